"""Billing and subscription of the caller: `/v1/billing`, `/v1/subscription`.

They are parts of the caller's own User aggregate: any role may read and change its own (API
keys, having no user, get 403, except for recording billing history). `ETag` is the user
aggregate's version; `If-Match` is honoured on the PUTs.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from documents.user import User
from routes.deps import CurrentContext, IfMatch, set_etag, set_location
from schemas.billing import (
    BILLING_HISTORY_VIEW,
    BILLING_INFO_VIEW,
    BILLING_VIEW,
    PAYMENT_METHOD_VIEW,
    SUBSCRIPTION_VIEW,
    BillingHistoryCreate,
    BillingHistoryRead,
    BillingInfoBody,
    BillingInfoRead,
    BillingRead,
    PaymentMethodCreate,
    PaymentMethodRead,
    SubscriptionChange,
    SubscriptionRead,
)
from service import billing, users

router = APIRouter(tags=["billing"])


def _billing(user: User) -> BillingRead:
    return BILLING_VIEW.document(user)


@router.get("/billing", response_model=BillingRead)
async def get_billing(ctx: CurrentContext, response: Response) -> Any:
    """Subscription, billing info, recent history and payment methods (safe card data only)."""
    user = await users.get_me(ctx=ctx)
    set_etag(response, user.version)
    return _billing(user)


@router.put("/billing/info", response_model=BillingInfoRead)
async def put_billing_info(
    body: BillingInfoBody, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Replace who and where to bill."""
    user = await billing.put_billing_info(ctx=ctx, data=body, expected_version=if_match)
    set_etag(response, user.version)
    return BILLING_INFO_VIEW.document(user.billing.billing_info)


@router.post(
    "/billing/payment-methods",
    response_model=PaymentMethodRead,
    status_code=status.HTTP_201_CREATED,
)
async def add_payment_method(
    body: PaymentMethodCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Store a payment method: provider, brand, last4, expiry (a card number or CVC is 422)."""
    user, method = await billing.add_payment_method(ctx=ctx, data=body)
    set_etag(response, user.version)
    set_location(request, response, "remove_payment_method", id=method.id)
    return PAYMENT_METHOD_VIEW.document(method)


@router.delete("/billing/payment-methods/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_payment_method(id: UUID, ctx: CurrentContext) -> Response:
    """Remove a payment method."""
    user = await billing.remove_payment_method(ctx=ctx, id=id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    set_etag(response, user.version)
    return response


@router.post(
    "/billing/history", response_model=BillingHistoryRead, status_code=status.HTTP_201_CREATED
)
async def record_billing_item(
    body: BillingHistoryCreate, ctx: CurrentContext, response: Response
) -> Any:
    """Record an invoice or charge for a user of the tenant (admin; the newest are kept)."""
    user, item = await billing.record_billing_item(ctx=ctx, data=body)
    set_etag(response, user.version)
    return BILLING_HISTORY_VIEW.document(item)


@router.get("/subscription", response_model=SubscriptionRead)
async def get_subscription(ctx: CurrentContext, response: Response) -> Any:
    """The caller's subscription with its plan history."""
    user = await users.get_me(ctx=ctx)
    set_etag(response, user.version)
    return SUBSCRIPTION_VIEW.document(user.subscription)


@router.put("/subscription", response_model=SubscriptionRead)
async def change_plan(
    body: SubscriptionChange, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Move to `plan`, appending `{"from", "to", "changed_at"}` to `plan_history`."""
    user = await billing.change_plan(ctx=ctx, plan=body.plan, expected_version=if_match)
    set_etag(response, user.version)
    return SUBSCRIPTION_VIEW.document(user.subscription)
