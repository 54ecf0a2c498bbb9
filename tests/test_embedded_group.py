"""`$group` on the embedded backend gives MongoDB's answers where a value is missing.

mongomock's own stage dropped a whole `$push` value when any part of it was missing (the team
read model lost every member whose user it could not join), let `$first` fall through to the
next document, compared `$max` across types with Python's operators (TypeError), counted
booleans in `$sum` and answered one row for no input. Each test fails on mongomock's stage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.embedded.engine import EngineClient


def aggregate(docs: list[dict[str, Any]], *stages: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `stages` over `docs` in a fresh embedded collection."""
    collection = EngineClient().database("db").get_collection("c")
    if docs:
        collection.insert_many(docs)
    return list(collection.aggregate(list(stages)))


def test_push_keeps_an_object_whose_parts_are_missing() -> None:
    teams = [{"_id": 1, "members": [{"user_id": 10, "role": "owner"}, {"user_id": 11}]}]
    rows = aggregate(
        teams,
        {"$unwind": "$members"},
        # what `$lookup` gives: member 10's user, and none for 11 (`$user` is [])
        {"$addFields": {"user": {"$cond": [{"$eq": ["$members.user_id", 10]}, [{"n": "A"}], []]}}},
        {
            "$group": {
                "_id": "$_id",
                "members": {
                    "$push": {
                        "user_id": "$members.user_id",
                        "role": "$members.role",
                        "name": {"$arrayElemAt": ["$user.n", 0]},
                    }
                },
            }
        },
    )
    assert rows == [
        {"_id": 1, "members": [{"user_id": 10, "role": "owner", "name": "A"}, {"user_id": 11}]}
    ]


def test_push_and_add_to_set_skip_missing_values_but_keep_nulls() -> None:
    docs = [{"_id": 1, "v": None}, {"_id": 2}, {"_id": 3, "v": 1}, {"_id": 4, "v": 1.0}]
    rows = aggregate(
        docs,
        {"$sort": {"_id": 1}},
        {"$group": {"_id": None, "all": {"$push": "$v"}, "set": {"$addToSet": "$v"}}},
    )
    assert rows[0]["all"] == [None, 1, 1.0]
    assert len(rows[0]["set"]) == 2  # null, and 1 (1.0 is the same number)


def test_first_and_last_of_a_missing_value_are_null() -> None:
    docs = [{"_id": 1}, {"_id": 2, "v": "x"}, {"_id": 3}]
    rows = aggregate(
        docs,
        {"$sort": {"_id": 1}},
        {"$group": {"_id": None, "first": {"$first": "$v"}, "last": {"$last": "$v"}}},
    )
    assert rows == [{"_id": None, "first": None, "last": None}]


def test_min_and_max_compare_across_types_in_bson_order_ignoring_null() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    docs = [{"_id": 1, "v": 5}, {"_id": 2, "v": "a"}, {"_id": 3, "v": when}, {"_id": 4, "v": None}]
    rows = aggregate(docs, {"$group": {"_id": None, "lo": {"$min": "$v"}, "hi": {"$max": "$v"}}})
    assert rows[0]["lo"] == 5  # numbers < strings < dates
    assert rows[0]["hi"].replace(tzinfo=UTC) == when


def test_sum_and_avg_ignore_booleans_and_other_non_numbers() -> None:
    docs = [{"_id": 1, "v": True}, {"_id": 2, "v": 2}, {"_id": 3, "v": "3"}, {"_id": 4, "v": 4.5}]
    rows = aggregate(
        docs, {"$group": {"_id": None, "s": {"$sum": "$v"}, "a": {"$avg": "$v"}, "n": {"$sum": 1}}}
    )
    assert rows == [{"_id": None, "s": 6.5, "a": 3.25, "n": 4}]


def test_no_input_gives_no_group_even_for_a_null_key() -> None:
    assert aggregate([], {"$group": {"_id": None, "n": {"$sum": 1}}}) == []
    count = {"$group": {"_id": None, "n": {"$sum": 1}}}
    assert aggregate([{"_id": 1}], {"$match": {"_id": 2}}, count) == []


def test_a_missing_key_groups_with_null_and_numbers_group_by_value() -> None:
    docs = [{"_id": 1, "k": None}, {"_id": 2}, {"_id": 3, "k": 1}, {"_id": 4, "k": 1.0}]
    rows = aggregate(docs, {"$group": {"_id": "$k", "n": {"$count": {}}}})
    assert [(r["_id"], r["n"]) for r in rows] == [(None, 2), (1, 2)]


@pytest.mark.parametrize("spec", [{"v": {"$median": "$v"}}, {"v": 1}])
def test_an_unknown_or_malformed_accumulator_is_refused(spec: dict[str, Any]) -> None:
    from pymongo.errors import OperationFailure

    with pytest.raises(OperationFailure):
        aggregate([{"_id": 1, "v": 1}], {"$group": {"_id": None, **spec}})
