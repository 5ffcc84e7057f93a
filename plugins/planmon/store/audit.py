"""The audit log's one writer: entries appended inside the caller's transaction.

``audit_log`` is append-only: nothing in the store updates or deletes an entry. Every view that
changes something audits it in the same transaction as the change (:func:`append_audit`), so a
rolled-back change leaves no entry and a committed one always has its entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from planmon.store.schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry: who did what, to which target and subject, with details."""

    actor: str
    action: str
    target_id: int | None = None
    subject: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def append_audit(connection: Connection, *entries: AuditEntry) -> None:
    """Append ``entries`` in the caller's transaction (one statement for all of them)."""
    if not entries:
        return
    at = datetime.now(UTC).replace(tzinfo=None)
    connection.execute(
        insert(audit_log),
        [
            {
                "at": at,
                "actor": entry.actor,
                "action": entry.action,
                "target_id": entry.target_id,
                "subject": entry.subject,
                "details": dict(entry.details),
            }
            for entry in entries
        ],
    )
