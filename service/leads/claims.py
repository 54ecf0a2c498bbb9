"""Claims on lead dedupe keys: exact per-tenant dedupe with `leads` sharded on `{tenant_id, _id}`.

A lead's email, phone and MLS id are unique among its tenant's live leads. MongoDB can no
longer enforce that on `leads` (its shard key cannot prefix a unique index on `(tenant_id,
email)`), so `lead_claims` (documents/lead_claim.py) does: one row per held value, unique on
`(tenant_id, field, value)`, naming the lead that holds it. The rules:

- **Claim before the write** that gives a live lead a value (create, update, restore, merge,
  bulk import): `claim_many` inserts every claim in one unordered `insert_many`; a duplicate
  key means another lead holds the value, answered with the create route's 409
  (`Conflict.duplicate`, `existing_id` = the holder). A lead that fails keeps none of the
  claims this call made for it.
- **Release after** the lead lets the value go (soft delete, erase, merge-away, an update
  that changes or clears it): `release` / `release_leads`, conditioned on the holder, so a
  release never drops another lead's claim.
- **Stale claims** (a crash between claim and write, or before a release): a claim whose lead
  does not exist, is deleted, or holds another value now is stale once it is older than
  `CLAIM_GRACE` — the grace protects a write in flight between its claim and its lead. A
  stale claim is taken over by one conditional update (holder and `claimed_at` unchanged), so
  two contenders cannot both win; `sweep_stale` (`python -m service.cli repair`) deletes them.
  Claiming a value the lead already holds refreshes `claimed_at`, which is how a restore or a
  retried write keeps a sweep from deleting a claim it is about to rely on.
- `backfill` creates the claims of leads stored before the guard existed
  (`python -m service.cli migrate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from bson import Binary
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.base import utcnow
from documents.lead import LeadBase
from documents.lead_claim import LeadClaim
from documents.user import Role
from service.core import journal
from service.core.context import RequestContext
from service.core.errors import Conflict
from service.core.repository import tenant_filter, uuid_filter
from service.storage.migrations import Backfill, register_backfill

Key = tuple[str, str]
"""A dedupe key: (field, normalised value)."""

DEDUPE_FIELDS = ("email", "phone", "mls_id")
CLAIM_GRACE = timedelta(minutes=10)
"""How long a claim without a live holder of its value still blocks others: far longer than
any write between a claim and its lead (a request's budget, a bulk chunk's insert)."""
_DUPLICATE_KEY = 11000
_ATTEMPTS = 3  # per key: a holder released or taken over meanwhile is looked at again


def _collection() -> Any:
    return LeadClaim.get_pymongo_collection()


def _uuid(value: Any) -> UUID:
    return value.as_uuid() if isinstance(value, Binary) else UUID(str(value))


def _new_claims(
    tenant: Binary,
    wanted: Iterable[tuple[UUID, Iterable[Key]]],
    now: datetime,
    claim_ids: Iterator[Binary],
) -> list[dict[str, Any]]:
    # Each lead's new claims, in `wanted`'s order; `tenant` as stored and each lead's id
    # encoded once, not once per claim; the ids drawn together (`claim_ids`). One
    # comprehension, not a call per claim: a bulk chunk makes two or three a row.
    return [
        {
            "_id": next(claim_ids),
            "tenant_id": tenant,
            "field": field,
            "value": value,
            "lead_id": lead,
            "claimed_at": now,
        }
        for lead_id, keys in wanted
        if keys
        for lead in (uuid_filter(lead_id),)
        for field, value in keys
    ]


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _holders(ctx: RequestContext, keys: Iterable[Key]) -> dict[Key, dict[str, Any]]:
    """The stored claims on `keys`, one query per field (each served by the unique index)."""
    by_field: dict[str, list[str]] = {}
    for field, value in keys:
        by_field.setdefault(field, []).append(value)
    found: dict[Key, dict[str, Any]] = {}
    for field, values in by_field.items():
        cursor = _collection().find(tenant_filter(ctx, {"field": field, "value": {"$in": values}}))
        async for raw in cursor:
            found[(raw["field"], raw["value"])] = raw
    return found


async def _live_values(ctx: RequestContext, lead_ids: Iterable[UUID]) -> dict[UUID, set[Key]]:
    """The dedupe keys each of these leads holds live (a missing or deleted lead: none)."""
    ids = list(dict.fromkeys(lead_ids))
    if not ids:
        return {}
    cursor = LeadBase.get_pymongo_collection().find(
        tenant_filter(ctx, {"_id": {"$in": [uuid_filter(i) for i in ids]}}),
        {"is_deleted": 1, **dict.fromkeys(DEDUPE_FIELDS, 1)},
    )
    held: dict[UUID, set[Key]] = {}
    async for raw in cursor:
        if not raw.get("is_deleted"):
            keys = {(f, v) for f in DEDUPE_FIELDS if isinstance(v := raw.get(f), str)}
            held[_uuid(raw["_id"])] = keys
    return held


def _stale(holder: dict[str, Any], held: dict[UUID, set[Key]], now: datetime) -> bool:
    """A claim its lead does not hold live, older than the grace period."""
    key = (holder["field"], holder["value"])
    if key in held.get(_uuid(holder["lead_id"]), set()):
        return False
    return _as_utc(holder["claimed_at"]) <= now - CLAIM_GRACE


async def _take(
    ctx: RequestContext,
    lead_id: UUID,
    key: Key,
    holder: dict[str, Any] | None,
    now: datetime,
) -> tuple[bool, Any]:
    """Make `lead_id` the holder of `key`: insert, or replace `holder` unchanged since read.

    Returns (taken, claim `_id` or the holder's current lead id when not taken).
    """
    collection = _collection()
    if holder is None:  # released since: claim it afresh
        claim_id = iter((journal.pooled_uuid7.binary(),))
        (claim,) = _new_claims(uuid_filter(ctx.tenant_id), [(lead_id, (key,))], now, claim_id)
        try:
            await collection.insert_one(claim)
        except DuplicateKeyError:
            return False, None
        return True, claim["_id"]
    result = await collection.update_one(
        tenant_filter(
            ctx,
            {
                "field": holder["field"],
                "value": holder["value"],
                "lead_id": holder["lead_id"],
                "claimed_at": holder["claimed_at"],
            },
        ),
        {"$set": {"lead_id": uuid_filter(lead_id), "claimed_at": now}},
    )
    return result.matched_count == 1, holder["_id"]


def _conflict(holder_id: UUID, field: str) -> Conflict:
    return Conflict.duplicate(resource="lead", field=field, existing_id=holder_id)


async def claim_many(
    ctx: RequestContext,
    wanted: Sequence[tuple[UUID, Sequence[Key]]],
    *,
    replaceable: Iterable[UUID] = (),
) -> dict[UUID, Conflict]:
    """Claim each lead's keys for it; returns the 409 of each lead that could not have all.

    One unordered `insert_many` for every claim; only duplicates cost more (one read of their
    holders per field, one of the holders' leads, and a conditional update per stale or
    `replaceable` holder: a merge's sources). A lead listed here that fails keeps none of the
    claims this call made for it; keys it already held stay its own.
    """
    conflicts, _ = await _claim_many(ctx, wanted, replaceable=replaceable, confirm=True)
    return conflicts


async def _claim_many(
    ctx: RequestContext,
    wanted: Sequence[tuple[UUID, Sequence[Key]]],
    *,
    replaceable: Iterable[UUID],
    confirm: bool,
) -> tuple[dict[UUID, Conflict], dict[UUID, list[Any]]]:
    # `made`: the claims this call inserted or took over, per lead. `confirm`: refresh the
    # `claimed_at` of claims the lead already held (not needed by the backfill).
    now = utcnow()
    tenant = uuid_filter(ctx.tenant_id)
    # Each lead's id encoded once, without a look-up per claim (a UUID's hash is Python code).
    claim_ids = iter(journal.pooled_uuid7.binaries(sum(len(keys) for _, keys in wanted)))
    claims = _new_claims(tenant, wanted, now, claim_ids)
    if not claims:
        return {}, {}
    made: dict[UUID, list[Any]] = {}
    refused: list[int] = []
    try:
        await _collection().insert_many(claims, ordered=False)
    except BulkWriteError as exc:
        for error in exc.details.get("writeErrors", []):
            if error.get("code") != _DUPLICATE_KEY:
                raise
            refused.append(error["index"])
    if not refused and confirm:
        # Every claim made and none to resolve: `made` would only serve a refusal's undo
        # (the usual bulk chunk skips building it, a look-up per lead).
        return {}, {}
    rows = [(lead_id, key) for lead_id, keys in wanted for key in keys]
    refused_set = set(refused)
    start = 0
    for lead_id, keys in wanted:  # the claims are in `wanted`'s order, a lead's together
        end = start + len(keys)
        ids = [claims[p]["_id"] for p in range(start, end) if p not in refused_set]
        if ids:
            made.setdefault(lead_id, []).extend(ids)
        start = end
    refused_rows = [rows[i] for i in sorted(refused)]
    conflicts = await _resolve(ctx, refused_rows, now, replaceable, made, confirm)
    if conflicts:
        await _drop(ctx, [c for lead_id in conflicts for c in made.pop(lead_id, [])])
    return conflicts, made


async def _resolve(
    ctx: RequestContext,
    refused: list[tuple[UUID, Key]],
    now: datetime,
    replaceable: Iterable[UUID],
    made: dict[UUID, list[Any]],
    confirm: bool,
) -> dict[UUID, Conflict]:
    """Keys another claim holds: ours already, stale or replaceable (taken over), or a 409."""
    conflicts: dict[UUID, Conflict] = {}
    allowed = set(replaceable)
    pending = refused
    for _ in range(_ATTEMPTS):
        if not pending:
            break
        holders = await _holders(ctx, (key for _, key in pending))
        held = await _live_values(ctx, (_uuid(h["lead_id"]) for h in holders.values()))
        again: list[tuple[UUID, Key]] = []
        for lead_id, key in pending:
            if lead_id in conflicts:
                continue
            holder = holders.get(key)
            holder_id = None if holder is None else _uuid(holder["lead_id"])
            if holder is not None and holder_id == lead_id:
                # Ours already (a retry): confirmed now, so a sweep leaves it alone.
                if confirm:
                    await _take(ctx, lead_id, key, holder, now)
                continue
            if holder is not None and holder_id not in allowed and not _stale(holder, held, now):
                assert holder_id is not None
                conflicts[lead_id] = _conflict(holder_id, key[0])
                continue
            taken, claim_id = await _take(ctx, lead_id, key, holder, now)
            if taken:
                made.setdefault(lead_id, []).append(claim_id)
            else:
                again.append((lead_id, key))
        pending = again
    for lead_id, key in pending:  # still contended after every attempt
        if lead_id not in conflicts:
            holder = (await _holders(ctx, [key])).get(key)
            holder_id = lead_id if holder is None else _uuid(holder["lead_id"])
            conflicts[lead_id] = _conflict(holder_id, key[0])
    return conflicts


async def _drop(ctx: RequestContext, claim_ids: list[Any]) -> None:
    if claim_ids:
        await _collection().delete_many(tenant_filter(ctx, {"_id": {"$in": claim_ids}}))


async def claim(
    ctx: RequestContext, lead_id: UUID, keys: Sequence[Key], *, replaceable: Iterable[UUID] = ()
) -> Conflict | None:
    """Claim `keys` for one lead; the 409 to answer when another lead holds one, else None."""
    if not keys:
        return None
    conflicts = await claim_many(ctx, [(lead_id, keys)], replaceable=replaceable)
    return conflicts.get(lead_id)


async def release(ctx: RequestContext, lead_id: UUID, keys: Iterable[Key]) -> None:
    """Release `keys` if `lead_id` holds their claims (a claim another lead took stays)."""
    for field, value in keys:
        await _collection().delete_one(
            tenant_filter(ctx, {"field": field, "value": value, "lead_id": uuid_filter(lead_id)})
        )


async def release_leads(ctx: RequestContext, lead_ids: Iterable[UUID]) -> None:
    """Release every claim these leads hold (after a soft delete, an erasure, a merge)."""
    ids = [uuid_filter(i) for i in dict.fromkeys(lead_ids)]
    if ids:
        await _collection().delete_many(tenant_filter(ctx, {"lead_id": {"$in": ids}}))


# -- maintenance: the stale sweep (`repair`) and the backfill (`migrate`) ---------------------


@dataclass
class ClaimsReport:
    """What a sweep or a backfill did."""

    examined: int = 0
    changed: int = 0  # claims deleted (sweep) or created (backfill)
    clashes: int = 0  # backfill: a value another lead's claim holds already


CLAIMS_ACTOR = UUID(int=0)  # the maintenance walks act for no user


def _scope(tenant_id: UUID) -> RequestContext:
    return RequestContext(tenant_id=tenant_id, actor_id=CLAIMS_ACTOR, role=Role.owner)


async def sweep_stale(*, batch_size: int = 500, now: datetime | None = None) -> ClaimsReport:
    """Delete every stale claim (all tenants, `_id` order); each delete is conditional."""
    now = now or utcnow()
    report = ClaimsReport()
    last: Any = None
    while True:
        query = {} if last is None else {"_id": {"$gt": last}}
        batch = await _collection().find(query).sort("_id", 1).limit(batch_size).to_list()
        if not batch:
            return report
        last = batch[-1]["_id"]
        report.examined += len(batch)
        by_tenant: dict[UUID, list[dict[str, Any]]] = {}
        for raw in batch:
            by_tenant.setdefault(_uuid(raw["tenant_id"]), []).append(raw)
        for tenant_id, claims in by_tenant.items():
            ctx = _scope(tenant_id)
            held = await _live_values(ctx, (_uuid(c["lead_id"]) for c in claims))
            for raw in claims:
                if not _stale(raw, held, now):
                    continue
                unchanged = {k: raw[k] for k in ("field", "value", "lead_id", "claimed_at")}
                result = await _collection().delete_one(tenant_filter(ctx, unchanged))
                report.changed += result.deleted_count


async def backfill(*, batch_size: int = 500) -> ClaimsReport:
    """Claim the keys of every live lead stored before claims existed (idempotent)."""
    report = ClaimsReport()
    leads = LeadBase.get_pymongo_collection()
    projection = {"tenant_id": 1, "is_deleted": 1, **dict.fromkeys(DEDUPE_FIELDS, 1)}
    last: Any = None
    while True:
        query = {} if last is None else {"_id": {"$gt": last}}
        batch = await leads.find(query, projection).sort("_id", 1).limit(batch_size).to_list()
        if not batch:
            return report
        last = batch[-1]["_id"]
        by_tenant: dict[UUID, list[tuple[UUID, list[Key]]]] = {}
        for raw in batch:
            if raw.get("is_deleted") or raw.get("tenant_id") is None:
                continue
            keys = [(f, v) for f in DEDUPE_FIELDS if isinstance(v := raw.get(f), str)]
            if keys:
                wanted = by_tenant.setdefault(_uuid(raw["tenant_id"]), [])
                wanted.append((_uuid(raw["_id"]), keys))
        for tenant_id, wanted in by_tenant.items():
            report.examined += len(wanted)
            conflicts, made = await _claim_many(
                _scope(tenant_id), wanted, replaceable=(), confirm=False
            )
            report.changed += sum(len(claims) for claims in made.values())
            report.clashes += len(conflicts)


async def _migrate_step(*, batch_size: int, dry_run: bool, **_: object) -> ClaimsReport | None:
    # Claiming is a write: a dry run reports nothing for it.
    return None if dry_run else await backfill(batch_size=batch_size)


register_backfill(Backfill(name="lead_claims", model=LeadBase, run=_migrate_step))


__all__ = [
    "CLAIM_GRACE",
    "ClaimsReport",
    "Key",
    "backfill",
    "claim",
    "claim_many",
    "release",
    "release_leads",
    "sweep_stale",
]
