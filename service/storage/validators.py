"""`$jsonSchema` validators generated from the Beanie models, one per collection.

MongoDB checks writes against a collection's validator, so documents written outside the
service (a `mongosh` session, a script) are held to the same shape as the models. The schemas
are generated, never written by hand, so they follow the models:

* Types are BSON types (`bsonType`), as Beanie stores them: UUIDs `binData`, datetimes and
  dates `date`, integers `int`/`long`, floats `double` (integers accepted), `Decimal`
  `decimal`, enums and literals their values; aliases as stored (`_id`, `from`/`to`).
* Constraints come from the fields: lengths, ranges, item counts (the bounded lists), patterns
  (written for PCRE: `\\uXXXX` becomes `\\x{XXXX}`), required fields (those without a default,
  and `_id`).
* `additionalProperties: false` only where the model forbids unknown keys (embedded parts);
  roots accept extra fields, since reads ignore them and older shapes may keep a few (see
  documents/migrations.py).
* A polymorphic collection (campaigns, leads, events) gets a `oneOf` with one schema per
  subtype, each pinned to its `type` and Beanie's `_class_id`.

`apply_validators` installs them with `collMod` (`validationLevel: "moderate"`: existing
documents that do not match, such as ones still in an older shape, can still be updated, while
every insert and every update of a valid document is checked); `mongosh_commands` prints the
same commands for an operator. On the embedded backend `collMod` stores a validator without
enforcing it. tests/support/validate_stored.py checks every document the test suite stores against
these schemas with a JSON Schema validator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from beanie import Document
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from pymongo.errors import OperationFailure

from documents import ALL_DOCUMENTS
from documents.base import RootDocument
from service.core.settings import Settings

ValidationAction = Literal["error", "warn"]

INTEGER = ["int", "long"]
NUMBER = ["double", "int", "long"]
# JSON Schema `type` → BSON types, for what the generator leaves as plain JSON types.
_BSON_TYPES: dict[str, str | list[str]] = {
    "string": "string",
    "integer": INTEGER,
    "number": NUMBER,
    "boolean": "bool",
    "object": "object",
    "array": "array",
    "null": "null",
}
# Keywords MongoDB's `$jsonSchema` (draft 4 subset) accepts; everything else is dropped.
_KEPT = frozenset(
    {
        "bsonType",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "anyOf",
        "oneOf",
        "allOf",
    }
)
ROOT_ENVELOPE = frozenset(
    {"tenant_id", "created_at", "updated_at", "is_deleted", "version", "schema_version"}
)
_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")


class _BsonJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema generator, answering BSON types where they differ from JSON."""

    # The overrides keep pydantic's signatures; a BSON type does not depend on the schema.

    def uuid_schema(self, schema: core_schema.UuidSchema) -> JsonSchemaValue:  # noqa: ARG002
        return {"bsonType": "binData"}

    def bytes_schema(self, schema: core_schema.BytesSchema) -> JsonSchemaValue:  # noqa: ARG002
        return {"bsonType": "binData"}

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:  # noqa: ARG002
        return {"bsonType": "date"}

    def date_schema(self, schema: core_schema.DateSchema) -> JsonSchemaValue:  # noqa: ARG002
        return {"bsonType": "date"}  # Beanie stores a date as midnight of that day

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:  # noqa: ARG002
        return {"bsonType": "decimal"}

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> JsonSchemaValue:  # noqa: ARG002
        return {"bsonType": NUMBER}  # Beanie stores seconds


def _to_bson(node: Any, defs: dict[str, Any]) -> Any:
    """Pydantic's output made MongoDB-ready: refs inlined, JSON types as BSON, extras dropped."""
    if isinstance(node, list):
        return [_to_bson(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _to_bson({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and "bsonType" not in node:
            out["bsonType"] = _BSON_TYPES[value]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # Draft 4 (MongoDB): a boolean modifying minimum/maximum.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "pattern":
            out[key] = _UNICODE_ESCAPE.sub(r"\\x{\1}", value)
        elif key == "properties":
            out[key] = {name: _to_bson(prop, defs) for name, prop in value.items()}
        elif key in _KEPT:
            out[key] = _to_bson(value, defs)
    if "enum" in out and "bsonType" not in out:
        out["bsonType"] = _enum_types(out["enum"])
    return _merge_nullable(out)


def _enum_types(values: Iterable[Any]) -> str | list[str]:
    found = sorted(
        {"null" if v is None else "bool" if isinstance(v, bool) else _scalar(v) for v in values}
    )
    return found[0] if len(found) == 1 else found


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    return "long" if isinstance(value, int) else "double"


def _merge_nullable(node: dict[str, Any]) -> dict[str, Any]:
    # {"anyOf": [X, {"bsonType": "null"}]} → X with "null" added to its bsonType: keywords of
    # other types (minLength…) do not apply to null, so the meaning is the same, and shorter.
    options = node.get("anyOf")
    if not options or {"bsonType": "null"} not in options or len(options) != 2:
        return node
    (other,) = [o for o in options if o != {"bsonType": "null"}]
    if "bsonType" not in other or any(k in other for k in ("anyOf", "oneOf", "allOf")):
        return node
    types = other["bsonType"] if isinstance(other["bsonType"], list) else [other["bsonType"]]
    merged = {**other, "bsonType": [*types, "null"]}
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**merged, **rest}


def _collection(model: type[Document]) -> str:
    return str(model.Settings.name)


def _class_id(model: type[Document], root: type[Document]) -> str:
    # Beanie's `_class_id` of a subclass: the class names from the root down, dot-joined.
    chain = [c.__name__ for c in model.__mro__ if isinstance(c, type) and issubclass(c, root)]
    return ".".join(reversed(chain))


def _object_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, schema_generator=_BsonJsonSchema)
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _to_bson(raw, defs)
    # Fields without a default, `_id`, and a root's envelope: the repository always writes it,
    # and a root without `is_deleted` would be invisible to every scoped query.
    envelope = ROOT_ENVELOPE if issubclass(model, RootDocument) else set()
    schema["required"] = sorted({"_id", *schema.get("required", []), *envelope})
    return schema


def collections() -> dict[str, list[type[Document]]]:
    """Every collection with its document classes (the root first), from the registry."""
    found: dict[str, list[type[Document]]] = {}
    for model in ALL_DOCUMENTS:
        found.setdefault(_collection(model), []).append(model)
    return found


def validator_for(model: type[Document]) -> dict[str, Any]:
    """The `validator` document (`{"$jsonSchema": …}`) of `model`'s collection.

    For the root of a polymorphic collection it covers every registered subtype.
    """
    subtypes = [
        m for m in collections()[_collection(model)] if m is not model and issubclass(m, model)
    ]
    if not subtypes:
        schema = {"title": _collection(model), **_object_schema(model)}
        return {"$jsonSchema": schema}
    variants = []
    for subtype in subtypes:
        variant = _object_schema(subtype)
        variant["properties"]["_class_id"] = {
            "bsonType": "string",
            "enum": [_class_id(subtype, model)],
        }
        variant["required"] = sorted({*variant["required"], "_class_id", "type"})
        variants.append(variant)
    return {"$jsonSchema": {"title": _collection(model), "bsonType": "object", "oneOf": variants}}


def validators() -> dict[str, dict[str, Any]]:
    """The validator of every collection, by collection name."""
    return {name: validator_for(models[0]) for name, models in collections().items()}


def _action(action: ValidationAction | None) -> ValidationAction:
    if action is not None:
        return action
    return Settings().validation_action


def _coll_mod(name: str, validator: dict[str, Any], action: ValidationAction) -> dict[str, Any]:
    return {
        "collMod": name,
        "validator": validator,
        "validationLevel": "moderate",
        "validationAction": action,
    }


async def apply_validators(db: Any, *, action: ValidationAction | None = None) -> list[str]:
    """Install every collection's validator with `collMod` (creating missing collections).

    `action` defaults to the `VALIDATION_ACTION` setting. Needs the `collMod` privilege
    (`dbAdmin` on the database), which the service's own user does not have: operators run
    it (`python -m service.cli validators --apply`). Returns the collections changed.
    """
    chosen = _action(action)
    done = []
    for name, validator in validators().items():
        try:
            await db.command(_coll_mod(name, validator, chosen))
        except OperationFailure as exc:
            if exc.code != 26:  # NamespaceNotFound: the collection does not exist yet
                raise
            await db.create_collection(
                name, validator=validator, validationLevel="moderate", validationAction=chosen
            )
        done.append(name)
    return done


def mongosh_commands(*, action: ValidationAction | None = None) -> str:
    """The `collMod` commands installing every validator, ready to paste into `mongosh`."""
    chosen = _action(action)
    return "\n".join(
        f"db.runCommand({json.dumps(_coll_mod(name, validator, chosen), indent=2)});"
        for name, validator in validators().items()
    )
