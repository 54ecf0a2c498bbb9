"""mongomock's private parts the embedded backend uses are where we expect them (issue 22).

An upgrade of mongomock that moves or reshapes any of them fails here, with the hook's name,
rather than quietly changing the backend's answers. The list lives in mongomock_hooks.py.
"""

from __future__ import annotations

import inspect

import pytest
from mongomock import filtering

from service.embedded import mongomock_hooks as hooks
from service.embedded.engine import EngineCollection

pytestmark = pytest.mark.embedded_only


def test_mongomock_is_the_tested_version() -> None:
    assert hooks.installed_version() == hooks.TESTED_VERSION, (
        "mongomock changed: re-check every hook in service/embedded/mongomock_hooks.py, run "
        "tests/test_embedded_differential.py -m differential_long, then bump TESTED_VERSION "
        "and the pin in pyproject.toml"
    )


@pytest.mark.parametrize("name", sorted(hooks.COLLECTION_METHODS))
def test_collection_methods_keep_their_parameters(name: str) -> None:
    method = getattr(hooks.Collection, name, None)
    assert callable(method), f"mongomock.collection.Collection.{name} is gone"
    parameters = tuple(inspect.signature(method).parameters)
    wanted = hooks.COLLECTION_METHODS[name]
    assert parameters[: len(wanted)] == wanted, f"Collection.{name}{parameters}"


def test_the_matcher_hooks_exist() -> None:
    matcher = hooks.Filterer()
    for attribute in hooks.FILTERER_ATTRIBUTES:
        assert hasattr(matcher, attribute), f"mongomock _Filterer.{attribute} is gone"
    assert {"$in", "$nin", "$eq"} <= set(matcher._operator_map)
    assert callable(hooks.in_operator) and hooks.in_operator(1, [1, 2])
    assert hooks.NOTHING is filtering.NOTHING
    assert all(isinstance(t, type) for t in hooks.REGEX_TYPES)
    assert {"$set", "$unset", "$inc", "$max", "$min"} <= set(hooks.UPDATERS)
    assert callable(hooks.process_pipeline)
    parameters = list(inspect.signature(hooks.parse_expression).parameters)
    assert parameters[:2] == ["expression", "doc_dict"]
    assert callable(hooks.validate_ok_for_update) and callable(hooks.validate_ok_for_replace)


def test_nothing_of_mongomock_is_patched_globally() -> None:
    # Our `$in`, `$nin` and `$geoWithin` live on the engine's own matcher instance.
    shipped = filtering._filterer_inst._operator_map
    assert shipped["$in"] is filtering._in_op
    assert "$geoWithin" not in shipped
    assert hooks.UPDATERS["$max"].__module__ == "mongomock.collection"
    assert issubclass(EngineCollection, hooks.Collection)
