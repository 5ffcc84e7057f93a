"""Errors planmon raises, each saying what happened, to what, and what to do next.

Reasons are enums so callers (and the per-aspect collection status) can branch on them without
parsing messages. Messages never carry credentials: use :func:`scrub_secrets` on any driver text.
"""

from __future__ import annotations

import enum
import re


class PlanmonError(Exception):
    """Base of every error planmon raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(PlanmonError):
    """A setting is missing or invalid; the message names the setting and how to fix it."""


class PlanParseError(PlanmonError):
    """A plan document could not be read.

    ``source`` names the file (or ``<bytes>``), ``position`` says where (``line 12, column 4`` or a
    byte offset) when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        position: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.position = position
        where = ", ".join(part for part in (source, position) if part)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)


class EngineErrorReason(enum.Enum):
    UNREACHABLE = "unreachable"
    AUTHENTICATION = "authentication"
    PERMISSION_DENIED = "permission_denied"
    FEATURE_UNAVAILABLE = "feature_unavailable"
    TIMEOUT = "timeout"
    UNKNOWN_ENGINE = "unknown_engine"
    QUERY_FAILED = "query_failed"


class EngineError(PlanmonError):
    """Talking to a monitored database failed; ``reason`` says how, ``target`` where."""

    def __init__(
        self,
        message: str,
        *,
        reason: EngineErrorReason,
        target: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.target = target
        prefix = f"target {target!r}: " if target else ""
        super().__init__(prefix + scrub_secrets(message), hint=hint)


class RefusalReason(enum.Enum):
    """Which safety rail refused a remediation (docs/adr/0003-remediation-safety-rails.md)."""

    MODE_OFF = "mode_off"  # the target's remediation mode is off
    DRY_RUN = "dry_run"  # mode propose: proposals only, nothing executes
    NOT_ALLOWED = "not_allowed"  # the action is not on the target's allow-list
    RATE_LIMIT = "rate_limit"  # the target had its maximum of actions in the last hour
    MAINTENANCE_WINDOW = "maintenance_window"  # outside every maintenance window of the target
    FORCED_BY_OTHERS = "forced_by_others"  # a plan of the query is forced by someone else or by APC
    NOT_OURS = "not_ours"  # an undo of something planmon did not do
    NO_ACTION = "no_action"  # nothing safe to propose for this regression
    NOT_APPROVED = "not_approved"  # no approval is recorded for the proposal
    WRONG_STATE = "wrong_state"  # the remediation is not in a state this step accepts
    REGRESSION_CLOSED = "regression_closed"  # the regression is no longer open
    NO_CONNECTION = "no_connection"  # the target has no remediation connection id
    DISPATCHER_PLAN = "dispatcher_plan"  # SQL Server PSP: a dispatcher plan, never forced (force a variant's)
    TEMPORARY_ID = "temporary_id"  # SQL Server secondary replicas: a negative placeholder query/plan id
    ENGINE_HINT = "engine_hint"  # SQL Server: the query's Query Store hints were written by the engine
    HINTS_UNKNOWN = "hints_unknown"  # SQL Server: the query's current Query Store hints could not be read


class RemediationRefused(PlanmonError):
    """A remediation was not executed because a safety rail said no (the message names the rail)."""

    def __init__(self, message: str, *, reason: RefusalReason, hint: str | None = None) -> None:
        self.reason = reason
        super().__init__(message, hint=hint)


# password=..., pwd=..., or the userinfo part of a URL (scheme://user:secret@host).
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*[=:]\s*('[^']*'|\"[^\"]*\"|[^\s;,)]+)"),
    re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/\s@]*):[^@\s/]*@"),
)


def scrub_secrets(text: str) -> str:
    """Remove password-like values and URL credentials from driver messages before they are shown."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}=***", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}:***@", text)
