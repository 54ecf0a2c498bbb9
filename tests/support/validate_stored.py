"""Check stored documents against the generated `$jsonSchema` validators.

The validators come from service/storage/validators.py.

`stored_document_errors(db)` validates every document of every collection with the
`jsonschema` package, extended with MongoDB's `bsonType` keyword (a type checker mapping each
BSON type to the Python values PyMongo decodes it to) and MongoDB's regex dialect (PCRE's
`\\x{HHHH}` read back as the character for Python's `re`). MongoDB's `$jsonSchema` is draft 4,
so the validator is draft 4's.

As a pytest plugin (registered in tests/conftest.py) it runs after every test that used the
`database` fixture when `VALIDATE_STORED_DOCUMENTS=1`: the whole suite then proves that every
document it stores satisfies its collection's validator. tests/test_validators.py runs the
same check over a flow touching every collection in the normal suite.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
from bson import Binary, Decimal128, ObjectId
from bson.int64 import Int64
from jsonschema import Draft4Validator, ValidationError, validators

from service.storage.validators import validators as generated_validators

_BSON_PYTHON: dict[str, Any] = {
    "string": str,
    "int": int,
    "long": (int, Int64),
    "double": float,
    "decimal": Decimal128,
    "bool": bool,
    "date": datetime,
    "binData": (Binary, bytes, uuid.UUID),
    "objectId": ObjectId,
    "null": type(None),
    "object": dict,
    "array": list,
}
_PCRE_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{4})\}")


def _is_bson(instance: Any, bson_type: str) -> bool:
    if isinstance(instance, bool) and bson_type != "bool":
        return False  # a bool is an int in Python, never in BSON
    return isinstance(instance, _BSON_PYTHON[bson_type])


# A jsonschema keyword function: the library calls it with all four arguments.
def _bson_type(validator: Any, types: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:  # noqa: ARG001
    wanted = [types] if isinstance(types, str) else types
    if not any(_is_bson(instance, t) for t in wanted):
        yield ValidationError(f"{instance!r} is not of bsonType {wanted}")


def _python_patterns(node: Any) -> Any:
    # PCRE's \x{HHHH} (what MongoDB reads) back to the character, for Python's `re`.
    if isinstance(node, list):
        return [_python_patterns(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _PCRE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
        if key == "pattern"
        else _python_patterns(value)
        for key, value in node.items()
    }


BsonValidator = validators.extend(Draft4Validator, validators={"bsonType": _bson_type})


def validator_of(collection: str) -> Any:
    """A JSON Schema validator for one collection's generated `$jsonSchema`."""
    schema = _python_patterns(generated_validators()[collection]["$jsonSchema"])
    BsonValidator.check_schema(schema)
    return BsonValidator(schema)


async def stored_document_errors(db: Any) -> tuple[dict[str, int], list[str]]:
    """Documents checked per collection, and one line per document failing its validator."""
    checked: dict[str, int] = {}
    errors: list[str] = []
    known = generated_validators()
    for name in await db.list_collection_names():
        if name not in known:
            errors.append(f"{name}: a collection without a generated validator")
            continue
        validator = validator_of(name)
        checked[name] = 0
        async for doc in db[name].find({}):
            checked[name] += 1
            problem = next(iter(validator.iter_errors(doc)), None)
            if problem is not None:
                where = "/".join(str(p) for p in problem.absolute_path)
                errors.append(f"{name} {doc.get('_id')}: {where}: {problem.message[:300]}")
    return checked, errors


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of tests that store invalid documents on purpose."""
    config.addinivalue_line(
        "markers",
        "stores_invalid_documents: the test writes documents its validator refuses, on purpose "
        "(VALIDATE_STORED_DOCUMENTS skips it)",
    )


@pytest.fixture(autouse=True)
async def _validate_stored_documents(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """With VALIDATE_STORED_DOCUMENTS=1, fail a test whose stored documents break a validator."""
    wanted = os.environ.get("VALIDATE_STORED_DOCUMENTS") == "1" and (
        request.node.get_closest_marker("stores_invalid_documents") is None
    )
    # The test's own database (the same instance its fixtures get), kept for after the test.
    db = (
        request.getfixturevalue("database")
        if wanted and "database" in request.fixturenames
        else None
    )
    yield
    if db is not None:
        _, errors = await stored_document_errors(db)
        assert errors == [], "stored documents fail their collection's $jsonSchema validator"
