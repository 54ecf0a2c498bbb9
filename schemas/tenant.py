"""API shapes of the tenant's settings: `GET /v1/tenant` and `PATCH /v1/tenant`."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, Field

from documents.base import Name
from documents.tenant import QuietHours, Retention, TimeZoneName
from schemas.common import PatchBody, ReadView, ResourceRead


class QuietHoursRead(BaseModel):
    start: str
    end: str


class RetentionRead(BaseModel):
    erase_deleted_after_days: int | None = None


class TenantRead(ResourceRead):
    """The tenant's settings."""

    name: str
    owner_id: UUID | None = None
    default_phone_region: str = Field(description="ISO 3166 region phones are read in.")
    time_zone: str | None = Field(
        default=None, description="IANA zone of local-day analytics (null: UTC)."
    )
    quiet_hours: QuietHoursRead = Field(
        description="Calls and texts are allowed from `start` to `end` in the lead's local time."
    )
    retention: RetentionRead


TENANT_VIEW: ReadView[TenantRead] = ReadView(TenantRead)
to_tenant_read = TENANT_VIEW.document


class TenantUpdate(PatchBody):
    """`PATCH /v1/tenant` (admin): any of the settings; `time_zone` may be cleared with null."""

    nullable: ClassVar[frozenset[str]] = frozenset({"time_zone"})

    name: Name | None = None
    default_phone_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    time_zone: TimeZoneName | None = None
    quiet_hours: QuietHours | None = Field(
        default=None, examples=[{"start": "09:00", "end": "20:00"}]
    )
    retention: Retention | None = Field(default=None, examples=[{"erase_deleted_after_days": 30}])

    def stored_changes(self) -> dict[str, Any]:
        """The sent fields as stored values (embedded settings as plain data)."""
        return {
            k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in self.changes().items()
        }
