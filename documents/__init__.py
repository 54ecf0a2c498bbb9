"""Beanie documents and embedded models.

ALL_DOCUMENTS is what the database binds; AGGREGATE_ROOTS are the journaled roots.
"""

from documents.ai import AIUsageLog, AIUsageTotals
from documents.api_key import ApiKey
from documents.base import RootDocument
from documents.blog import Blog
from documents.campaign import (
    CallCampaign,
    CampaignBase,
    CampaignLead,
    EmailCampaign,
    SocialCampaign,
    TextCampaign,
)
from documents.event import (
    CallEvent,
    EmailEvent,
    IdempotencyRecord,
    SocialEvent,
    TextEvent,
    TouchpointEvent,
)
from documents.integration import Integration
from documents.journal import DomainEvent, FeedHead
from documents.kanban import GlobalKanban
from documents.lead import GenericLead, LeadBase, MLSRealEstateLead
from documents.lead_claim import LeadClaim
from documents.lease import Lease
from documents.read_models import (
    CampaignStats,
    CampaignTally,
    EventSlot,
    GlobalAnalytics,
    GlobalCampaign,
    GlobalTeam,
    ProjectionCheckpoint,
)
from documents.research import ResearchTopic
from documents.saved_search import SavedSearch
from documents.suppression import Suppression
from documents.team import Invitation, Team
from documents.tenant import Tenant
from documents.throttle import ThrottleCounter
from documents.user import User
from documents.webhook import WebhookDelivery, WebhookEndpoint, WebhookState
from documents.workspace_read_models import GlobalBlog, GlobalResearchStats

AGGREGATE_ROOTS: list[type[RootDocument]] = [
    Tenant,
    User,
    ApiKey,
    Team,
    Invitation,
    Blog,
    GlobalKanban,
    ResearchTopic,
    AIUsageLog,
    SavedSearch,
    Integration,
    CampaignBase,
    LeadBase,
    WebhookEndpoint,
    Suppression,
]

READ_MODELS: list[type] = [
    GlobalResearchStats,
    GlobalBlog,
    GlobalCampaign,
    CampaignStats,
    CampaignTally,
    EventSlot,
    GlobalAnalytics,
    GlobalTeam,
    ProjectionCheckpoint,
]

# Campaign/lead subtypes share their root's collection (the root is the journaled aggregate);
# events are immutable facts, not journaled aggregates (see documents/event.py).
CAMPAIGN_LEAD_EVENT_DOCUMENTS: list[type] = [
    CallCampaign,
    SocialCampaign,
    TextCampaign,
    EmailCampaign,
    CampaignLead,
    MLSRealEstateLead,
    GenericLead,
    TouchpointEvent,
    CallEvent,
    TextEvent,
    SocialEvent,
    EmailEvent,
    IdempotencyRecord,
    LeadClaim,
]

# Operational state of the background workers: leases, feed heads, webhook delivery.
OPERATIONAL_DOCUMENTS: list[type] = [Lease, FeedHead, WebhookState, WebhookDelivery]

ALL_DOCUMENTS: list[type] = [
    *AGGREGATE_ROOTS,
    *CAMPAIGN_LEAD_EVENT_DOCUMENTS,
    DomainEvent,
    ThrottleCounter,
    AIUsageTotals,
    *READ_MODELS,
    *OPERATIONAL_DOCUMENTS,
]
