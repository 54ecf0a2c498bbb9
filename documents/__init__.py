"""Beanie documents and embedded models.

ALL_DOCUMENTS is what the database binds; AGGREGATE_ROOTS are the journaled roots.
"""

from documents.api_key import ApiKey
from documents.base import RootDocument
from documents.journal import DomainEvent
from documents.tenant import Tenant
from documents.user import User

AGGREGATE_ROOTS: list[type[RootDocument]] = [
    Tenant,
    User,
    ApiKey,
]

READ_MODELS: list[type] = []

ALL_DOCUMENTS: list[type] = [*AGGREGATE_ROOTS, DomainEvent, *READ_MODELS]
