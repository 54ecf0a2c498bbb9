"""The suppression list: normalised values a tenant must not contact, per channel (admin).

Values are normalised as the leads' dedupe keys are (phones to E.164 in the tenant's region,
e-mails trimmed and lower-cased), so a lookup by a lead's stored phone or e-mail is one
equality on the `(tenant_id, channel, value)` index.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from pydantic import TypeAdapter, ValidationError
from pymongo.errors import DuplicateKeyError

from documents.base import Email, normalize_phone
from documents.consent import Channel
from documents.suppression import Suppression
from schemas.suppressions import (
    SUPPRESSION_VIEW,
    SuppressionCreate,
    SuppressionFilters,
    SuppressionRead,
)
from service.core.context import RequestContext, Role
from service.core.errors import Conflict, Unprocessable
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to

_email: TypeAdapter[str] = TypeAdapter(Email)

# The do-not-contact list names phones and e-mails: admins manage and see it, its journal
# changes too (issue 25).
ADMIN_ONLY = dict.fromkeys(Action, Role.admin)


async def _clash(ctx: RequestContext, doc: Suppression) -> Conflict | None:
    existing = await _live(ctx, doc.channel, doc.value)
    if existing is None or existing.id == doc.id:
        return None
    return Conflict.duplicate(resource="suppression", field="value", existing_id=existing.id)


POLICY = register_policy(ResourcePolicy(model=Suppression, roles=ADMIN_ONLY, clash=_clash))


def normalise(channel: Channel, value: str, region: str, loc: list[str | int]) -> str:
    """A raw phone or e-mail as stored: E.164 for calls and texts, lower case for e-mail."""
    try:
        if channel == Channel.email:
            return _email.validate_python(value)
        return normalize_phone(value, region)
    except ValidationError:  # email-validator's reasons are its own wording: say it plainly
        raise Unprocessable(
            "Not a valid email address: expected something like name@example.com.", loc=loc
        ) from None
    except ValueError as exc:  # normalize_phone says why in plain words
        raise Unprocessable(str(exc), loc=loc) from None


async def _live(ctx: RequestContext, channel: Channel, value: str) -> Suppression | None:
    return await Repository(Suppression, ctx).find_one({"channel": channel.value, "value": value})


async def create_suppression(*, ctx: RequestContext, data: SuppressionCreate) -> Suppression:
    """Add a value to the list; 409 with `existing_id` when it is already there."""
    POLICY.require(ctx, Action.create)
    value = normalise(data.channel, data.value, ctx.phone_region, ["body", "value"])
    doc = Suppression(
        tenant_id=ctx.tenant_id, channel=data.channel, value=value, reason=data.reason
    )
    clash = await _clash(ctx, doc)
    if clash is not None:
        raise clash
    try:
        return await Repository(Suppression, ctx).create(doc)
    except DuplicateKeyError:  # a concurrent add won between the lookup and the insert
        raise (await _clash(ctx, doc)) or Conflict("The value is already suppressed.") from None


async def list_suppressions(
    *, ctx: RequestContext, filters: SuppressionFilters
) -> PageResult[SuppressionRead]:
    """A page of the tenant's suppressions, newest first (admin)."""
    POLICY.require(ctx, Action.read)
    query = equal_to(filters, {"channel": "channel"})
    if filters.value is not None:  # without a channel: an e-mail if it has an @, else a phone
        channel = filters.channel or (Channel.email if "@" in filters.value else Channel.call)
        query["value"] = normalise(channel, filters.value, ctx.phone_region, ["query", "value"])
    return await Repository(Suppression, ctx).page_for(query, filters, view=SUPPRESSION_VIEW)


async def get_suppression(*, ctx: RequestContext, id: UUID) -> SuppressionRead:
    """One suppression of the tenant (admin; 404 if missing, removed or another tenant's)."""
    POLICY.require(ctx, Action.read)
    return await Repository(Suppression, ctx).read(id, SUPPRESSION_VIEW)


async def delete_suppression(*, ctx: RequestContext, id: UUID) -> None:
    """Remove a value from the list (a journaled soft delete); 404 if not the tenant's."""
    POLICY.require(ctx, Action.delete)
    repo = Repository(Suppression, ctx)
    await repo.soft_delete(await repo.get(id))


async def suppressed_values(
    ctx: RequestContext, channel: Channel, values: Iterable[str]
) -> set[str]:
    """Which of these stored values are suppressed on `channel` (one indexed query)."""
    wanted = sorted(set(values))
    if not wanted:
        return set()
    cursor = Suppression.get_pymongo_collection().find(
        Repository(Suppression, ctx).scope({"channel": channel.value, "value": {"$in": wanted}}),
        {"value": 1, "_id": 0},
    )
    found: set[str] = set()
    async for row in cursor:
        found.add(str(row["value"]))
    return found


__all__ = [
    "create_suppression",
    "delete_suppression",
    "get_suppression",
    "list_suppressions",
    "normalise",
    "suppressed_values",
]
