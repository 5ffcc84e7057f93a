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


class RemediationRefused(PlanmonError):
    """A remediation was not executed because a safety rail said no (the message names the rail)."""


# password=..., pwd=..., or the userinfo part of a URL (scheme://user:secret@host).
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*[=:]\s*('[^']*'|\"[^\"]*\"|[^\s;,)]+)"),
    re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/\s@]*):[^@\s/]*@"),
)


def scrub_secrets(text: str) -> str:
    """Remove password-like values and URL credentials from driver messages before they are shown."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}=***", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}:***@", text)
