"""ReadView's plain twin: pages written from stored dicts are the bytes the models write."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import pytest
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    computed_field,
    field_serializer,
    model_validator,
)

from schemas.common import ReadView, ResourceRead, plain_schema


class Status(StrEnum):
    unknown = "unknown"
    opted_in = "opted_in"


class Channel(BaseModel):
    status: Status = Status.unknown
    at: datetime | None = None


class Consent(BaseModel):
    call: Channel = Field(default_factory=Channel)
    text: Channel = Field(default_factory=Channel)


class Cat(ResourceRead):
    type: Literal["cat"]
    name: str
    consent: Consent = Field(default_factory=Consent)
    tags: list[str] = Field(default_factory=list)


class Dog(ResourceRead):
    type: Literal["dog"]
    barks: int = Field(default=0, validation_alias="bark_count")


Pet = Annotated[Cat | Dog, Field(discriminator="type")]


def _raw(kind: str, **fields: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    return {
        "_id": uuid4(),
        "tenant_id": uuid4(),
        "type": kind,
        "created_at": now,
        "updated_at": now,
        "is_deleted": False,
        "version": 1,
        "secret": "never answered",
        **fields,
    }


def _by_models(view: ReadView[Any], raws: list[dict[str, Any]]) -> bytes:
    return b"[" + b",".join(view.json(item) for item in view.stored_many(raws)) + b"]"


def test_a_union_page_is_written_from_dicts_as_its_models_write_it() -> None:
    view: ReadView[Any] = ReadView(Pet)
    raws = [
        _raw("cat", name="Tom", consent={"call": {"status": "opted_in"}}),
        _raw("dog", bark_count=3),
        _raw("cat", name="Kit"),  # consent absent: the model default, as a dict
    ]
    assert plain_schema(view.adapter.core_schema) is not None
    assert view.stored_json_many(raws) == _by_models(view, raws)
    assert b"secret" not in view.stored_json_many(raws)
    assert view.stored_json_many([]) == b"[]"


def test_a_stored_value_outside_an_enum_is_still_refused() -> None:
    """The plain twin answers an enum's stored text as is, but only a member's value."""
    view: ReadView[Any] = ReadView(Pet)
    bad = [_raw("cat", name="Tom", consent={"call": {"status": "maybe"}})]
    with pytest.raises(ValidationError):
        view.stored_json_many(bad)
    with pytest.raises(ValidationError):
        view.stored_many(bad)


class WithComputed(ResourceRead):
    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"v{self.version}"


class WithAfterValidator(ResourceRead):
    @model_validator(mode="after")
    def _check(self) -> WithAfterValidator:
        assert isinstance(self, WithAfterValidator)
        return self


class WithFieldSerializer(ResourceRead):
    @field_serializer("version")
    def _version(self, value: int) -> str:
        return f"{type(self).__name__}:{value}"


class Holder(BaseModel):
    id: UUID = Field(validation_alias="_id")
    inner: WithComputed


def test_what_needs_a_model_keeps_the_models() -> None:
    """Computed fields, validators of a model, serializer methods: no plain twin; the page is
    still the bytes its models write."""
    for schema in (WithComputed, WithAfterValidator, WithFieldSerializer, Holder):
        view: ReadView[Any] = ReadView(schema)
        assert plain_schema(view.adapter.core_schema) is None, schema
    raws = [_raw("x"), _raw("y")]
    for schema in (WithComputed, WithAfterValidator, WithFieldSerializer):
        view = ReadView(schema)
        assert view.stored_json_many(raws) == _by_models(view, raws)
    assert b'"label":"v1"' in ReadView(WithComputed).stored_json_many(raws)
