"""API shapes shared by every resource: list parameters, pages and the stored-resource envelope."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar, cast
from uuid import UUID

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializeAsAny,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import (
    CoreSchema,
    PydanticKnownError,
    SchemaSerializer,
    SchemaValidator,
    core_schema,
)

from documents.base import refuse_bool_number_mixups

T = TypeVar("T")

Cursor = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_=-]+$")
]


class ListParams(BaseModel):
    """Query parameters every list endpoint takes; resources extend it with typed filters.

    Unknown parameters are refused (422), so nothing but these typed values reaches a query.
    """

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200, description="Page size (max 200).")
    cursor: Cursor | None = Field(default=None, description="`next_cursor` of the previous page.")
    include_deleted: bool = Field(default=False, description="Include soft-deleted items.")
    include_archived: bool = Field(default=False, description="Include archived items.")


class PageParams(BaseModel):
    """Parameters of lists that have no soft delete (history, timelines, events)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200, description="Page size (max 200).")
    cursor: Cursor | None = Field(default=None, description="`next_cursor` of the previous page.")


class Page(BaseModel, Generic[T]):
    """One page of a list: `next_cursor` is null on the last page."""

    # Items are serialised by their own model (each is validated into one of T's models first):
    # for a discriminated union, pydantic-core's union serializer made a lead page's JSON ≈1.6x
    # as slow. The OpenAPI document is the same.
    items: list[SerializeAsAny[T]]
    next_cursor: str | None = None


class CountedPage(Page[T], Generic[T]):
    """One page of a list that can count: `total` is present only when `count=true` was asked."""

    total: int | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="How many items match the filters (all pages); only with `count=true`.",
    )


class Counted(BaseModel):
    """The `count` parameter of lists that can answer their total."""

    count: bool = Field(
        default=False,
        description="Add `total`, the number of matching items over all pages (one more query).",
    )


class ReadView(Generic[T]):
    """How stored documents become a response schema: one validation per document.

    `stored(raw)` validates a document as the driver returns it (`_id`, stored field names
    and units: read schemas map them with validation aliases) straight into the response
    schema, without building a Beanie document first; a polymorphic schema (a union
    discriminated on `type`) picks the subtype from the stored `type`. `document(doc)` does
    the same for a document already in hand (a write's result). Fields the schema does not
    declare (internals, secrets) are dropped.
    """

    def __init__(self, schema: Any, *, unread: Iterable[str] = ()) -> None:
        self.schema = schema
        self.adapter: TypeAdapter[T] = TypeAdapter(schema)
        self._many: TypeAdapter[list[T]] = TypeAdapter(list[schema])  # type: ignore[valid-type]
        self._plain: _PlainArray | bool | None = False  # not built yet
        # Stored fields no response shows (derived or internal): left on the server by reads
        # through this view, so a page carries and decodes only what it returns.
        read = _read_names(self.adapter.core_schema)
        if overlap := read.intersection(unread):
            raise ValueError(f"the schema reads the fields it leaves unread: {sorted(overlap)}")
        self.projection: Mapping[str, int] | None = dict.fromkeys(unread, 0) or None

    def stored(self, raw: Any) -> T:
        """The response object of a raw stored document."""
        return self.adapter.validate_python(raw)

    def stored_many(self, raws: Sequence[Any]) -> list[T]:
        """The response objects of raw stored documents (a page), in one validation call."""
        return self._many.validate_python(raws)

    def document(self, doc: BaseModel) -> T:
        """The response object of a Beanie document."""
        return self.adapter.validate_python(doc.model_dump())

    def json(self, item: T) -> bytes:
        """A response object as its JSON body, as FastAPI would write it for the schema.

        Serialised by the object's own model (validated by this view, so one of the schema's),
        which skips a union's serializer looking for the member; a route returning these bytes
        in a `Response` skips FastAPI's second validation and serialisation.
        """
        if isinstance(item, BaseModel):
            return item.__pydantic_serializer__.to_json(item, by_alias=True)
        return self.adapter.dump_json(item, by_alias=True)

    def json_many(self, items: Iterable[T]) -> bytes:
        """Response objects as the JSON array FastAPI would write for a list of the schema."""
        return b"[" + b",".join(self.json(item) for item in items) + b"]"

    def stored_json_many(self, raws: Sequence[Any]) -> bytes:
        """Raw stored documents as the JSON array of their response objects, in one pass.

        The bytes `json` writes for each of `stored_many(raws)`, without building the models:
        the schema's plain twin (`plain_schema`) validates each document into a dict in the
        model's field order and serialises it, ≈2x cheaper per document (issue 27). A schema
        it cannot mirror exactly falls back to the models.
        """
        if self._plain is False:  # built on first use: most views never write a page
            converted = plain_schema(self.adapter.core_schema)
            self._plain = None if converted is None else _PlainArray(converted)
        if isinstance(self._plain, _PlainArray):
            return self._plain.json(raws)
        return self.json_many(self.stored_many(raws))


def _read_names(schema: Any) -> set[str]:
    """Every field name and validation alias of the models in a core schema (nested ones
    too: a superset of the stored fields it reads)."""
    names: set[str] = set()
    nodes = [schema]
    while nodes:
        node = nodes.pop()
        if isinstance(node, list):
            nodes.extend(node)
        elif isinstance(node, dict):
            if node.get("type") in ("model-fields", "typed-dict"):
                for name, field in node["fields"].items():
                    names.add(name)
                    alias = field.get("validation_alias")
                    flat = alias if isinstance(alias, list) else [alias]
                    names.update(a if isinstance(a, str) else a[0] for a in flat if a)
            nodes.extend(node.values())
    return names


class _PlainArray:
    """Validates documents into dicts with a plain schema and writes them as a JSON array."""

    def __init__(self, schema: CoreSchema) -> None:
        self.validator = SchemaValidator(core_schema.list_schema(schema))
        self.serializer = SchemaSerializer(core_schema.list_schema(schema))
        self.discriminator: str | None = None
        self.members: dict[Any, SchemaSerializer] = {}
        union, definitions = schema, None
        if union["type"] == "definitions":
            union, definitions = union["schema"], union["definitions"]
        if union["type"] == "tagged-union" and isinstance(union["discriminator"], str):
            # Each dict is written by its member's serializer: the union's own tries the
            # members in turn for a dict (≈1.4x slower), as it does for a model.
            self.discriminator = union["discriminator"]
            for tag, member in union["choices"].items():
                if definitions is not None:
                    member = core_schema.definitions_schema(member, definitions)
                self.members[tag] = SchemaSerializer(member)

    def json(self, raws: Sequence[Any]) -> bytes:
        """The JSON array of these documents' response objects."""
        items = self.validator.validate_python(raws)
        if self.discriminator is None:
            return self.serializer.to_json(items, by_alias=True)
        key, members = self.discriminator, self.members
        return b"[" + b",".join(members[i[key]].to_json(i, by_alias=True) for i in items) + b"]"


class _NotPlain(Exception):
    """A schema part whose model a dict cannot stand in for."""


def plain_schema(schema: CoreSchema) -> CoreSchema | None:
    """`schema` with each model replaced by a typed dict of the same fields, or None.

    Validation then yields dicts in the models' field order (what a model's JSON follows) and
    serialising them writes the bytes the models would: the same field schemas, aliases,
    defaults and value serializers, without building an object per model. None when a part
    needs a model instance: a validator after or around a model, a model or field serializer
    method, computed fields, extra fields kept, a custom `__init__` or `model_post_init`.
    """
    try:
        return cast(CoreSchema, _plain(schema))
    except _NotPlain:
        return None


_MODEL_KEYS = {"type", "cls", "schema", "custom_init", "root_model", "config", "ref", "metadata"}
_FIELDS_KEYS = {"type", "fields", "model_name", "computed_fields", "ref", "metadata"}
_STR_ENUM_KEYS = {"type", "cls", "members", "sub_type", "ref", "metadata"}


def _plain(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "model":
        config = node.get("config", {})
        if (
            node.keys() - _MODEL_KEYS
            or node.get("custom_init")
            or node.get("root_model")
            or config.get("extra_fields_behavior") == "allow"
        ):
            raise _NotPlain(kind)
        inner = _plain(node["schema"])
        return {**inner, "ref": node["ref"]} if "ref" in node else inner
    if kind == "model-fields":
        if node.keys() - _FIELDS_KEYS or node.get("computed_fields"):
            raise _NotPlain(kind)
        fields: dict[str, Any] = {n: _plain_field(f) for n, f in node["fields"].items()}
        return core_schema.typed_dict_schema(fields, extra_behavior="ignore")
    if kind in ("function-after", "function-wrap", "function-plain") and _holds_model(
        node.get("schema")
    ):
        raise _NotPlain(kind)  # a validator of a model (or of values holding one): given a dict
    if kind == "enum" and node.get("sub_type") == "str" and not node.keys() - _STR_ENUM_KEYS:
        # A stored text value is answered as itself: no enum member made, nor its `.value`
        # read back by the serializer (≈5 a lead), and still only the members' values pass.
        plain_enum = core_schema.literal_schema([member.value for member in node["members"]])
        return {**plain_enum, "ref": node["ref"]} if "ref" in node else plain_enum
    if kind == "literal" and all(isinstance(v, StrEnum) for v in node["expected"]):
        # The same for a literal member (a subtype's `type`): its text, equal to the member.
        return {**node, "expected": [v.value for v in node["expected"]]}
    serialization = node.get("serialization")
    if isinstance(serialization, dict) and serialization.get("is_field_serializer"):
        raise _NotPlain("field serializer")  # a method: it is handed the model
    plain = {key: _plain(value) for key, value in node.items() if key != "metadata"}
    if kind == "default":
        plain.update(_plain_default(node))
    return plain


def _holds_model(node: Any) -> bool:
    if isinstance(node, list):
        return any(_holds_model(item) for item in node)
    if not isinstance(node, dict):
        return False
    if node.get("type") in ("model", "model-fields", "definition-ref"):
        return True
    return any(_holds_model(value) for key, value in node.items() if key != "metadata")


def _plain_field(field: dict[str, Any]) -> dict[str, Any]:
    schema = field["schema"]
    return {
        **{key: value for key, value in field.items() if key not in ("type", "frozen", "metadata")},
        "type": "typed-dict-field",
        "schema": _plain(schema),
        "required": schema.get("type") != "default",
    }


def _plain_default(node: dict[str, Any]) -> dict[str, Any]:
    """A default that is a model as its dict (the typed dict's serializer expects one)."""
    if "default" in node:
        default = node["default"]
        return {"default": default.model_dump()} if isinstance(default, BaseModel) else {}
    factory: Callable[..., Any] = node["default_factory"]
    if node.get("default_factory_takes_data"):
        return {"default_factory": lambda data: _dumped(factory(data))}
    return {"default_factory": lambda: _dumped(factory())}


def _dumped(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def read_shape(model: type[BaseModel], name: str) -> type[BaseModel]:
    """A plain response model with `model`'s fields and defaults but none of its input rules.

    Embedded input models check and normalise what clients send (per-field constraints,
    strict-scalar validators written in Python); a response validated from storage does not
    need them, and they cost most of a document's validation on the read path.
    """
    # Documentation (description, schema extras) is kept: the response schema reads the same.
    fields: dict[str, Any] = {
        field: (
            info.annotation,
            Field(
                info.default, description=info.description, json_schema_extra=info.json_schema_extra
            ),
        )
        for field, info in model.model_fields.items()
    }
    shape: type[BaseModel] = create_model(name, __doc__=model.__doc__, **fields)
    return shape


class ResourceRead(BaseModel):
    """Fields every stored resource carries in responses.

    `id` is also read from a stored document's `_id` (see `ReadView`).
    """

    id: UUID = Field(validation_alias=AliasChoices("id", "_id"))
    tenant_id: UUID
    created_at: datetime
    updated_at: datetime
    created_by: UUID | None = None
    updated_by: UUID | None = None
    is_deleted: bool
    deleted_at: datetime | None = None
    archived_at: datetime | None = None
    version: int


class HistoryChange(BaseModel):
    """One field's change inside a history entry."""

    field: str
    old: object | None = None
    new: object | None = None


class HistoryEntry(BaseModel):
    """One change event of a resource, as `GET /v1/<coll>/{id}/history` lists them."""

    version: int
    event_type: str
    actor_id: UUID | None
    actor_type: str
    occurred_at: datetime
    changes: list[HistoryChange]


class ProblemError(BaseModel):
    """One invalid input of a 422: where it is, what is wrong, and a machine-readable kind."""

    loc: list[str | int] = Field(
        description='Where the input is: `["body", "leads", 3, "email"]`, `["query", "limit"]`.'
    )
    msg: str = Field(description="What is wrong, for people.")
    type: str = Field(description="The kind of error (`missing`, `string_too_long`…).")


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`): every error the API answers."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="Always `about:blank`.")
    title: str = Field(description="The status's reason phrase.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong, for people.")


class ValidationProblem(Problem):
    """422: the request is well-formed but some inputs are invalid; `errors` lists each one."""

    errors: list[ProblemError] = Field(min_length=1)


def _absent_not_null(schema: dict[str, Any]) -> None:
    """A problem leaves out the optional members it lacks (never `null`): document them so."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class ConflictProblem(Problem):
    """409. A clash with an existing resource (a duplicate on create, update, restore or merge)
    names it: `existing_id` and the unique `field` it shares; other conflicts carry neither."""

    model_config = ConfigDict(json_schema_extra=_absent_not_null)

    existing_id: UUID | SkipJsonSchema[None] = Field(
        default=None, description="The live resource this request clashes with."
    )
    field: str | SkipJsonSchema[None] = Field(
        default=None, description="The unique field both share."
    )


class RetryProblem(Problem):
    """429 or 503: try again after `retry_after` seconds (also sent as `Retry-After`)."""

    model_config = ConfigDict(json_schema_extra=_absent_not_null)

    retry_after: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, description="Seconds to wait."
    )


class TimeRange(BaseModel):
    """`since` inclusive, `until` exclusive; a date alone means midnight UTC."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None


class IgnoreTenantId(BaseModel):
    """Base of request bodies: unknown fields are refused (422), but a `tenant_id` is dropped.

    The contract says a `tenant_id` in a body is ignored (tenancy comes from credentials), so
    that one key is removed before validation instead of failing `extra="forbid"`.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_tenant_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tenant_id" in data:
            data = {k: v for k, v in data.items() if k != "tenant_id"}
        return refuse_bool_number_mixups(cls, data)


def _money_number(value: Any) -> Any:
    """Accept only JSON numbers, snapping binary-float noise (0.5700000000000001) to the cent.

    A negative number is refused here, before the decimal schema's other bounds (digits and
    places, checked natively: a Python validator per bound cost ≈2 us a price), so that it
    is answered `greater_than_equal` as when `ge` was checked first.
    """
    if isinstance(value, _NOT_MONEY):
        raise ValueError("money must be a JSON number")
    if isinstance(value, float):
        exact = Decimal(repr(value))
        if not exact.is_finite():
            return exact  # refused by the decimal schema (not finite)
        if exact.adjusted() > 15:
            money = exact  # far out of range: the field's own bounds refuse it (422)
        else:
            cents = exact.quantize(_CENT)
            money = cents if abs(exact - cents) < _FLOAT_NOISE else exact
        if value < 0 and money < 0:  # (noise below zero snaps to -0.00, not negative)
            raise PydanticKnownError("greater_than_equal", {"ge": 0})
        return money
    if (type(value) is int and value < 0) or (
        isinstance(value, Decimal) and value.is_finite() and value < 0
    ):
        raise PydanticKnownError("greater_than_equal", {"ge": 0})
    return value


# Made once, not per value (each row of a bulk import has a price).
_NOT_MONEY = (bool, str)
_CENT = Decimal("0.01")
_FLOAT_NOISE = Decimal("1e-9")


Money = Annotated[
    Decimal,
    # The bounds before the validator: the decimal schema checks them natively.
    Field(ge=0, max_digits=14, decimal_places=2, description="Major units, at most 2 decimals."),
    BeforeValidator(_money_number),
    PlainSerializer(float, return_type=float, when_used="json"),
    # Pydantic would document `number | string` (requests) and a bare float (responses); the
    # contract says money is a JSON number with at most 2 decimals, both ways.
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 999_999_999_999.99,
            "multipleOf": 0.01,
            "description": "Major units, at most 2 decimals.",
        }
    ),
]
"""Money in the API: a JSON number in major units (stored as integer cents)."""


def from_stored_cents(data: Any, fields: dict[str, str]) -> Any:
    """A stored shape's integer-cents fields as the API's money fields (`{api: stored}`).

    The body of a response schema's `before` validator: raw documents and dumps of documents
    in hand both carry the stored names.
    """
    if not isinstance(data, dict):
        return data
    moved = {
        api: None if data[stored] is None else cents_to_money(data[stored])
        for api, stored in fields.items()
        if api not in data and stored in data
    }
    return {**data, **moved} if moved else data


def money_to_cents(value: Decimal) -> int:
    """Major units (at most 2 decimals) as integer cents."""
    return int(value * 100)


def cents_to_money(cents: int) -> Decimal:
    """Integer cents as major units."""
    return Decimal(cents) / 100


def strip_nulls(schema: dict[str, Any], cls: Any) -> None:
    """Document `null` only for the fields a patch may clear (`nullable`); others refuse it."""
    nullable: frozenset[str] = getattr(cls, "nullable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        if name in nullable or "anyOf" not in prop:
            continue
        options = [o for o in prop["anyOf"] if o != {"type": "null"}]
        if prop.get("default", ...) is None:
            del prop["default"]
        if len(options) == 1:
            del prop["anyOf"]
            prop.update(options[0])
        else:
            prop["anyOf"] = options


class PatchBody(IgnoreTenantId):
    """Base of partial-update bodies: an absent field is unchanged; `null` only where allowed.

    Subclasses list in `nullable` the fields a client may clear with `null`; `null` for any other
    field is a 422 rather than being mistaken for "unchanged" or stored as an invalid value.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=strip_nulls)

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_forbidden_nulls(self) -> PatchBody:
        bad = sorted(
            f for f in self.model_fields_set if getattr(self, f) is None and f not in self.nullable
        )
        if bad:
            raise ValueError(f"{', '.join(bad)} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, as Python values."""
        return {f: getattr(self, f) for f in self.model_fields_set}
