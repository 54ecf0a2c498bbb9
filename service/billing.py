"""Billing and subscription on the caller's own User aggregate (embedded, bounded parts).

Anyone may read and change their own billing (it is part of their user aggregate, like AI
settings); API keys have no user (403). Billing history items are recorded by the billing
integration: an admin (user or API key) for a user of the tenant. The embedded lists keep the
newest entries (`MAX_PLAN_HISTORY`, `MAX_BILLING_HISTORY`); the journal keeps every change.
"""

from __future__ import annotations

from uuid import UUID

from uuid6 import uuid7

from documents.base import utcnow
from documents.user import (
    MAX_BILLING_HISTORY,
    MAX_PAYMENT_METHODS,
    MAX_PLAN_HISTORY,
    BillingAddress,
    BillingHistoryItem,
    PaymentDetails,
    PlanChange,
    SubscriptionType,
    User,
)
from schemas.billing import BillingHistoryCreate, BillingInfoBody, PaymentMethodCreate
from schemas.common import money_to_cents
from service.core.context import RequestContext
from service.core.errors import Conflict, NotFound, Unprocessable
from service.core.policy import Action
from service.core.repository import Repository
from service.users import POLICY as USER_POLICY
from service.users import get_me


async def change_plan(
    *, ctx: RequestContext, plan: SubscriptionType, expected_version: int | None
) -> User:
    """Move the caller to `plan`, appending `{from, to, changed_at}` (same plan: no change)."""
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    current = user.subscription
    if current.subscription_type == plan:
        return user
    change = PlanChange.model_validate(
        {"from": current.subscription_type, "to": plan, "changed_at": utcnow()}
    )
    history = [*current.plan_history, change][-MAX_PLAN_HISTORY:]
    subscription = current.model_copy(update={"subscription_type": plan, "plan_history": history})
    return await repo.update(
        user,
        {"subscription": subscription.model_dump(by_alias=False)},
        expected_version=expected_version,
        event_type="plan_changed",
    )


async def put_billing_info(
    *, ctx: RequestContext, data: BillingInfoBody, expected_version: int | None
) -> User:
    """Replace who and where to bill (the default payment method is kept)."""
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    info = user.billing.billing_info.model_copy(
        update={
            **data.model_dump(exclude={"address"}),
            "address": BillingAddress(**data.address.model_dump()),
        }
    )
    billing = user.billing.model_copy(update={"billing_info": info})
    return await repo.update(
        user,
        {"billing": billing.model_dump()},
        expected_version=expected_version,
        event_type="billing_info_changed",
    )


async def add_payment_method(
    *, ctx: RequestContext, data: PaymentMethodCreate
) -> tuple[User, PaymentDetails]:
    """Store a payment method's safe data; the first one (or `is_default`) becomes the default."""
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    methods = user.billing.payment_methods
    if len(methods) >= MAX_PAYMENT_METHODS:
        raise Conflict(f"At most {MAX_PAYMENT_METHODS} payment methods; remove one first.")
    is_default = data.is_default or not methods
    method = PaymentDetails(
        id=uuid7(), **data.model_dump(exclude={"is_default"}), is_default=is_default
    )
    if is_default:
        methods = [m.model_copy(update={"is_default": False}) for m in methods]
    info = user.billing.billing_info
    if is_default:
        info = info.model_copy(update={"default_payment_method_id": method.id})
    billing = user.billing.model_copy(
        update={"payment_methods": [*methods, method], "billing_info": info}
    )
    user = await repo.update(
        user, {"billing": billing.model_dump()}, event_type="payment_method_added"
    )
    return user, method


async def remove_payment_method(*, ctx: RequestContext, id: UUID) -> User:
    """Remove a stored payment method (its safe data stays in the journal)."""
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    methods = user.billing.payment_methods
    if not any(m.id == id for m in methods):
        raise NotFound(f"payment method {id} not found")
    info = user.billing.billing_info
    if info.default_payment_method_id == id:
        info = info.model_copy(update={"default_payment_method_id": None})
    billing = user.billing.model_copy(
        update={"payment_methods": [m for m in methods if m.id != id], "billing_info": info}
    )
    return await repo.update(
        user, {"billing": billing.model_dump()}, event_type="payment_method_removed"
    )


async def record_billing_item(
    *, ctx: RequestContext, data: BillingHistoryCreate
) -> tuple[User, BillingHistoryItem]:
    """Append an invoice/charge to a user's billing history (admin; newest kept)."""
    USER_POLICY.require(ctx, Action.update)  # another user's aggregate: the users' admin rule
    user_id = data.user_id or ctx.require_user()
    repo = Repository(User, ctx)
    try:
        user = await repo.get(user_id)
    except NotFound:
        raise Unprocessable("No such user in this tenant.", loc=["body", "user_id"]) from None
    item = BillingHistoryItem(
        id=uuid7(),
        amount_cents=money_to_cents(data.amount),
        currency=data.currency,
        date=data.date,
        status=data.status,
        description=data.description,
    )
    history = sorted([*user.billing.billing_history, item], key=lambda i: i.date)
    billing = user.billing.model_copy(update={"billing_history": history[-MAX_BILLING_HISTORY:]})
    user = await repo.update(
        user, {"billing": billing.model_dump()}, event_type="billing_item_recorded"
    )
    return user, item
