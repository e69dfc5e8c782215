"""The journal: durable runs, steps, events and approval requests.

``open_store(url)`` picks a store; every store implements :class:`Store` and passes
the same conformance suite.  :class:`PostgresStore` needs the ``postgres`` extra and
is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrion.store.base import UNSET, Store
from orchestrion.store.codec import action_hash
from orchestrion.store.errors import (
    ApprovalExpired,
    ApprovalHashMismatch,
    ApprovalNotPending,
    CorruptRecord,
    DuplicateRecord,
    EventSequenceError,
    InvalidDecision,
    InvalidRecord,
    PayloadNotJSON,
    SchemaTooNew,
    StoreUnavailable,
    UnknownApproval,
    UnknownRun,
)
from orchestrion.store.memory import MemoryStore
from orchestrion.store.migrations import SCHEMA_VERSION
from orchestrion.store.open import open_store
from orchestrion.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    Decision,
    EventRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    utcnow,
)
from orchestrion.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from orchestrion.store.postgres import PostgresStore as PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "UNSET",
    "ApprovalExpired",
    "ApprovalHashMismatch",
    "ApprovalNotPending",
    "ApprovalRecord",
    "ApprovalStatus",
    "CorruptRecord",
    "Decision",
    "DuplicateRecord",
    "EventRecord",
    "EventSequenceError",
    "InvalidDecision",
    "InvalidRecord",
    "MemoryStore",
    "PayloadNotJSON",
    "RunRecord",
    "RunStatus",
    "SQLiteStore",
    "SchemaTooNew",
    "StepRecord",
    "StepStatus",
    "Store",
    "StoreUnavailable",
    "UnknownApproval",
    "UnknownRun",
    "action_hash",
    "open_store",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    # PostgresStore imports psycopg; only pay for (or fail on) that when asked.
    if name == "PostgresStore":
        from orchestrion.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
