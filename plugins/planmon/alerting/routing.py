"""Routing: which channels an alert goes to, by target environment, target tags, kind and severity.

The rules come from the YAML file named by ``PLANMON_ALERT_ROUTES`` (format in docs/alerting.md);
without one, everything goes to the built-in ``log`` channel. The file is validated as a whole and
every problem is reported with the file and the field (``routes[1].match.min_severity``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planmon.alerting.channels import (
    BrokenChannel,
    Channel,
    LogFileChannel,
    SlackWebhookChannel,
    SmtpChannel,
    WebhookChannel,
    slack_url_from_connection,
    webhook_url_from_connection,
)
from planmon.alerting.messages import TargetInfo, severity_rank
from planmon.errors import ConfigError, PlanmonError
from planmon.model import SEVERITIES, ConnectionLookup, Severity
from planmon.yaml_fields import OneOrMany, TextMapping

log = logging.getLogger(__name__)

LOG_CHANNEL = "log"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Match(_Strict):
    """What a route (or the digest) applies to; an empty match applies to everything."""

    environment: Annotated[list[str] | None, OneOrMany] = None  # any of these target environments
    tags: Annotated[dict[str, str], TextMapping] = Field(default_factory=dict)  # every k=v ("*": present)
    kinds: Annotated[list[str] | None, OneOrMany] = None  # regression kinds
    # low by default: ``info`` (under the impact floor) only where a route asks for it by name
    min_severity: Severity = Severity.LOW

    def matches(self, target: TargetInfo, *, severity: str, kind: str | None) -> bool:
        if self.environment is not None and target.environment not in self.environment:
            return False
        for key, wanted in self.tags.items():
            if key not in target.tags or (wanted != "*" and str(target.tags[key]) != wanted):
                return False
        if self.kinds is not None and kind is not None and kind not in self.kinds:
            return False
        return severity_rank(severity) >= SEVERITIES.index(self.min_severity)


class Route(_Strict):
    name: str | None = None
    match: Match = Field(default_factory=Match)
    channels: list[str] = Field(min_length=1)
    stop: bool = False  # later routes are not evaluated for what this one matched


class LogChannelDef(_Strict):
    type: Literal["log"]
    path: Path | None = None  # default PLANMON_ALERT_LOG_PATH, else $PLANMON_HOME/alerts.log


class WebhookChannelDef(_Strict):
    type: Literal["webhook"]
    url: str | None = None  # a URL without secrets; otherwise conn_id
    conn_id: str | None = None  # Airflow connection: host (URL); password sent as a bearer token
    timeout_seconds: float | None = Field(None, gt=0, le=120)
    ca_file: str | None = None  # an extra CA bundle; certificate verification cannot be turned off

    @model_validator(mode="after")
    def _one_source(self) -> WebhookChannelDef:
        if (self.url is None) == (self.conn_id is None):
            raise ValueError("set exactly one of url and conn_id")
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// (or http://)")
        return self


class SlackChannelDef(_Strict):
    type: Literal["slack"]
    conn_id: str  # Airflow connection whose password is the webhook URL or its token (never in this file)
    timeout_seconds: float | None = Field(None, gt=0, le=120)


class SmtpChannelDef(_Strict):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: Literal["smtp"]
    conn_id: str  # Airflow connection: host, port, login, password; extra from_email
    to: Annotated[list[str], OneOrMany] = Field(min_length=1)
    sender: str | None = Field(None, alias="from")
    starttls: bool = True
    ssl: bool = False


ChannelDef = Annotated[
    LogChannelDef | WebhookChannelDef | SlackChannelDef | SmtpChannelDef, Field(discriminator="type")
]


class Digest(_Strict):
    """The optional daily digest: one message per channel, once per UTC day from ``hour_utc`` on."""

    channels: list[str] = Field(min_length=1)
    hour_utc: int = Field(7, ge=0, le=23)
    match: Match = Field(default_factory=Match)
    top: int = Field(10, ge=1, le=100)


class RoutingConfig(_Strict):
    """The whole routing file."""

    channels: dict[str, ChannelDef] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=lambda: [Route(name="default", channels=[LOG_CHANNEL])])
    default_channels: list[str] = Field(default_factory=lambda: [LOG_CHANNEL])  # when no route matched
    digest: Digest | None = None

    @model_validator(mode="after")
    def _channels_defined(self) -> RoutingConfig:
        known = set(self.channels) | {LOG_CHANNEL}
        problems = [
            f"{where}: unknown channel {name!r}"
            for where, names in self._channel_references()
            for name in names
            if name not in known
        ]
        if problems:
            raise ValueError("; ".join(problems) + f" (defined: {', '.join(sorted(known))})")
        return self

    def _channel_references(self) -> list[tuple[str, list[str]]]:
        references = [(f"routes[{i}].channels", route.channels) for i, route in enumerate(self.routes)]
        references.append(("default_channels", self.default_channels))
        if self.digest is not None:
            references.append(("digest.channels", self.digest.channels))
        return references

    def channels_for(self, target: TargetInfo, *, severity: str, kind: str | None = None) -> list[str]:
        """Channel names for an alert, in route order, each once; ``default_channels`` if none matched.

        An ``info`` regression (under the impact floor) goes only where a route selected it with
        ``min_severity: info``: never to ``default_channels``, so by default it interrupts nobody.
        """
        chosen: list[str] = []
        matched = False
        for route in self.routes:
            if not route.match.matches(target, severity=severity, kind=kind):
                continue
            matched = True
            chosen += [name for name in route.channels if name not in chosen]
            if route.stop:
                break
        if matched:
            return chosen
        return [] if severity == Severity.INFO else list(self.default_channels)

    def channel_names(self) -> list[str]:
        names = {LOG_CHANNEL} | set(self.channels)
        return sorted(names)


def load_routing(path: Path | None) -> RoutingConfig:
    """The routing file at ``path`` validated, or the default (everything to ``log``) when None."""
    if path is None:
        return RoutingConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read the alert routing file {path}: {exc.strerror}",
            hint="fix PLANMON_ALERT_ROUTES or unset it to send everything to the log channel",
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the routing file must be a mapping with channels/routes/digest keys")
    try:
        return RoutingConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: {describe_errors(exc)}", hint="docs/alerting.md shows the format"
        ) from exc


def describe_errors(exc: ValidationError) -> str:
    """``field.path: message`` for every problem pydantic found, joined."""
    problems = []
    for error in exc.errors():
        location = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.get("loc", ())
        ).lstrip(".")
        problems.append(f"{location or 'file'}: {error['msg']}")
    return "; ".join(problems)


def build_channels(
    routing: RoutingConfig,
    *,
    default_log_path: Path,
    http_timeout: float,
    smtp_timeout: float,
    connection_getter: ConnectionLookup,
) -> dict[str, Channel]:
    """Every channel the routing file defines (plus ``log``), ready to send; channels that name a
    connection id resolve it through ``connection_getter`` (Airflow's, given by the caller).

    A channel that cannot be set up (say its connection id does not resolve) becomes a
    :class:`BrokenChannel`: its alerts are recorded as failed with the reason, the others still go.
    """
    channels: dict[str, Channel] = {LOG_CHANNEL: LogFileChannel(path=default_log_path)}
    for name, definition in routing.channels.items():
        try:
            channels[name] = _channel(
                name, definition, default_log_path, http_timeout, smtp_timeout, connection_getter
            )
        except PlanmonError as exc:
            log.warning("alert channel %s cannot be used: %s", name, exc)
            channels[name] = BrokenChannel(name=name, reason=str(exc))
    return channels


def _channel(  # noqa: PLR0917 (private helper of build_channels)
    name: str,
    definition: Any,
    default_log_path: Path,
    http_timeout: float,
    smtp_timeout: float,
    connection_of: ConnectionLookup,
) -> Channel:
    if isinstance(definition, LogChannelDef):
        return LogFileChannel(path=definition.path or default_log_path, name=name)
    if isinstance(definition, WebhookChannelDef):
        timeout = definition.timeout_seconds or http_timeout
        if definition.url is not None:
            return WebhookChannel(name=name, url=definition.url, timeout=timeout, ca_file=definition.ca_file)
        connection = connection_of(str(definition.conn_id))
        headers = {"Authorization": f"Bearer {connection.password}"} if connection.password else {}
        return WebhookChannel(
            name=name,
            url=webhook_url_from_connection(connection),
            timeout=timeout,
            headers=headers,
            ca_file=definition.ca_file,
        )
    if isinstance(definition, SlackChannelDef):
        url = slack_url_from_connection(connection_of(definition.conn_id))
        return SlackWebhookChannel(name=name, url=url, timeout=definition.timeout_seconds or http_timeout)
    smtp: SmtpChannelDef = definition
    return SmtpChannel(
        name=name,
        conn_id=smtp.conn_id,
        recipients=tuple(smtp.to),
        sender=smtp.sender,
        starttls=smtp.starttls,
        use_ssl=smtp.ssl,
        timeout=smtp_timeout,
        connection_getter=connection_of,
    )


def describe_routes(routing: RoutingConfig) -> Sequence[str]:
    """One line per route, for the task log."""
    return [
        f"{route.name or f'route {i}'}: {route.match.model_dump(exclude_defaults=True)} -> {route.channels}"
        for i, route in enumerate(routing.routes)
    ]
