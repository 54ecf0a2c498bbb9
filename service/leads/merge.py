"""Merging duplicate leads into one (`POST /v1/leads/{id}/merge`); see `merge_leads`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from documents.base import ENVELOPE_FIELDS, utcnow
from documents.event import TouchpointEvent
from documents.lead import LeadBase, LeadStatus
from service import campaigns
from service.core.context import RequestContext
from service.core.errors import Conflict, Unprocessable
from service.core.policy import Action
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.leads import claims as lead_claims
from service.leads import commands as leads
from service.leads.commands import dedupe_keys

# -- merge ------------------------------------------------------------------------------------

# Fields a merge never copies: identity, bookkeeping and what the merge itself decides.
_NOT_MERGED = ENVELOPE_FIELDS | frozenset(
    {
        "type",
        "schema_version",
        "pending_event",
        "revision_id",
        "status",
        "last_contacted_at",
        "merged_into",
        "search_text",
        "search_tokens",
        "is_archived",
    }
)
MAX_TAGS = 50
MAX_SEGMENTS = 50


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def merged_values(target: LeadBase, sources: Sequence[LeadBase]) -> dict[str, Any]:
    """The changes that give `target` the sources' values where it has none.

    Scalars and sub-documents are filled when empty on the target, the first source (in the
    order given) holding a value winning; the address is filled part by part; tags are
    united and segments gain the keys the target lacks (both within their bounds). Only the
    target type's fields are filled. `last_contacted_at` becomes the latest of all, and a
    `new` target that has now been contacted becomes `contacted`, as an event would make it.
    """
    current = target.model_dump()
    changes: dict[str, Any] = {}
    names = [n for n in type(target).model_fields if n not in _NOT_MERGED]
    dumps = [source.model_dump() for source in sources]
    for name in names:
        mine: Any = current.get(name)
        theirs = [d[name] for d in dumps if name in d and not _empty(d[name])]
        if not theirs:
            continue
        if name == "address":
            address = dict(mine)
            for part, value in address.items():
                if _empty(value):
                    address[part] = next((a[part] for a in theirs if not _empty(a[part])), value)
            if address != mine:
                changes[name] = address
        elif name == "tags":
            tags = list(dict.fromkeys([*mine, *(t for tags in theirs for t in tags)]))[:MAX_TAGS]
            if tags != mine:
                changes[name] = tags
        elif name == "segments":
            segments = dict(mine)
            for other in theirs:
                for key, value in other.items():
                    if key not in segments and len(segments) < MAX_SEGMENTS:
                        segments[key] = value
            if segments != mine:
                changes[name] = segments
        elif _empty(mine):
            changes[name] = theirs[0]
    contacted = [
        d for d in (target.last_contacted_at, *(s.last_contacted_at for s in sources)) if d
    ]
    if contacted and max(contacted) != target.last_contacted_at:
        changes["last_contacted_at"] = max(contacted)
    if contacted and target.status == LeadStatus.new:
        changes["status"] = LeadStatus.contacted
    return changes


async def _merge_sources(
    ctx: RequestContext, target: LeadBase, source_ids: Sequence[UUID]
) -> list[LeadBase]:
    # Live leads of the tenant, or leads an earlier attempt of this merge already merged into
    # this target (a retry); anything else (missing, another tenant's, deleted) is a 422.
    wanted = list(dict.fromkeys(source_ids))
    for position, source_id in enumerate(source_ids):
        if source_id == target.id:
            raise Unprocessable(
                "A lead cannot be merged into itself.", loc=["body", "source_ids", position]
            )
    found = {
        doc.id: doc
        for doc in await Repository(LeadBase, ctx).get_many(wanted, include_deleted=True)
    }
    for position, source_id in enumerate(source_ids):
        doc = found.get(source_id)
        if doc is None or (doc.is_deleted and doc.merged_into != target.id):
            raise Unprocessable(
                "Not a live lead of this tenant; nothing was merged.",
                loc=["body", "source_ids", position],
            )
    return [found[i] for i in wanted]


async def _refuse_a_crossed_merge(
    ctx: RequestContext, repo: Repository[LeadBase], target: LeadBase, deleted: list[LeadBase]
) -> None:
    """409, with this merge's deletions undone, when the target was merged into a source meanwhile.

    Two merges of one pair in opposite directions both pass their checks when they run at the
    same time, and each deletes its source: A merged into B and B into A, both gone. Of the
    two deletions the later one finds here its target already merged into its source (the
    earlier one was acknowledged first), so at least one side restores what it deleted and no
    two leads stay merged into each other. Claims the target took over from a restored source
    go back to it. Only a crash between the deletion and this check leaves such a pair
    (erasure and export walk it safely; restoring either lead undoes it).
    """
    if not deleted:
        return
    now = await repo.get(target.id, include_deleted=True)
    if not (now.is_deleted and now.merged_into in {s.id for s in deleted}):
        return
    for source in deleted:
        await repo.update(
            source,
            {"is_deleted": False, "deleted_at": None, "merged_into": None},
            event_type="restored",
        )
        await lead_claims.claim(ctx, source.id, dedupe_keys(source), replaceable=[target.id])
    raise Conflict(
        "The lead was merged into one of these sources by another request at the same time; "
        "nothing was merged. Check the leads and retry."
    )


async def merge_leads(*, ctx: RequestContext, id: UUID, source_ids: Sequence[UUID]) -> LeadBase:
    """Merge leads into lead `id`: it keeps its values and gains theirs where it has none.

    Steps, each safe to run again, in an order that makes any prefix of them a state the
    same request completes when retried (there are no multi-document transactions):

    1. Check everything before writing: the target is a live lead of the tenant (else 404);
       each source is a live lead of the tenant other than the target, or one this merge
       already merged into it (else 422). Then the target claims the keys it gains
       (service/leads/claims.py; a source's claim is taken over): a key another live lead
       holds is a 409 with `existing_id` and `field`, as on create.
    2. Soft-delete each source with `merged_into` = the target (journaled `lead.merged`) and
       release the sources' remaining claims. This records the merge durably first: a retry
       recognises these sources by `merged_into` and carries on.
    3. Move the sources' touchpoint events to the target (`lead_id`; a no-op when repeated).
    4. Move the sources' campaign links to the target (links it already has are not
       duplicated), then drop the sources' links; `lead_count` follows (each link once).
    5. Fill the target from the sources (journaled `lead.merged`; no change, no new version).

    A crash after any step leaves sources deleted and pointing at the target; the same
    request, retried, finds them accepted in step 1 and completes steps 3-5 (idempotent).
    Two concurrent merges of the same pair in opposite directions both pass step 1; the later
    of their source deletions is undone (409, `_refuse_a_crossed_merge`), so two leads never
    stay merged into each other.
    """
    leads.POLICY.require(ctx, Action.update)
    repo = Repository(LeadBase, ctx)
    target = await repo.get(id)
    sources = await _merge_sources(ctx, target, source_ids)
    changes = merged_values(target, sources)
    filled = type(target).model_validate({**target.model_dump(), **changes})
    held = dedupe_keys(target)
    gained = [key for key in dedupe_keys(filled) if key not in held]
    conflict = await lead_claims.claim(ctx, target.id, gained, replaceable=[s.id for s in sources])
    if conflict is not None:
        raise conflict
    now = utcnow()
    deleted = [
        await repo.update(
            source,
            {"is_deleted": True, "deleted_at": now, "merged_into": target.id},
            event_type="merged",
        )
        for source in sources
        if not source.is_deleted
    ]
    await _refuse_a_crossed_merge(ctx, repo, target, deleted)
    await lead_claims.release_leads(ctx, [s.id for s in sources])
    moved_from = [uuid_filter(s.id) for s in sources]
    await TouchpointEvent.get_pymongo_collection().update_many(
        tenant_filter(ctx, {"lead_id": {"$in": moved_from}}),
        {"$set": {"lead_id": uuid_filter(target.id)}},
    )
    await campaigns.move_links(ctx, [s.id for s in sources], target.id)
    return await repo.update(target, changes, event_type="merged")


__all__ = ["merge_leads", "merged_values"]
