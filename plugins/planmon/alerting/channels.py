"""Delivery channels: log file (the default), generic webhook, Slack incoming webhook and SMTP.

A channel's ``send`` returns when the message was accepted and raises :class:`DeliveryError` (with a
message free of credentials and URL tokens) when it was not; dispatch records either outcome in the
``alert`` table. HTTP goes through :func:`post_json`: http(s) only, certificates verified, a timeout,
and no redirect to another host.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from planmon.alerting.messages import AlertMessage
from planmon.errors import PlanmonError, scrub_secrets

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 200  # characters of an HTTP error body kept in the error (Slack says e.g. "no_service")
SLACK_HOOKS = "https://hooks.slack.com/services"


class DeliveryError(PlanmonError):
    """A channel did not accept a message; the message names the channel, never a secret."""


class Channel(Protocol):
    """Something that delivers an :class:`AlertMessage`; ``send`` raises on failure."""

    name: str

    def send(self, message: AlertMessage) -> None: ...


def redact_url(url: str) -> str:
    """scheme://host[:port]/... : paths and queries of webhook URLs often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..."


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow only 307/308 redirects to the same scheme, host and port (method and body kept).

    Other redirects would either leak the payload to another host or turn the POST into a GET that
    drops it while looking delivered; both are refused as delivery errors.
    """

    def redirect_request(  # noqa: PLR0917 (urllib's signature)
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        same_origin = (old.scheme, old.hostname, old.port) == (new.scheme, new.hostname, new.port)
        if code in (307, 308) and same_origin:
            return urllib.request.Request(  # noqa: S310 (same scheme as the checked original)
                newurl, data=req.data, headers=dict(req.header_items()), method=req.get_method()
            )
        where = "the same host" if same_origin else f"another host ({new.hostname})"
        raise urllib.error.HTTPError(newurl, code, f"refused redirect ({code}) to {where}", headers, fp)


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    ca_file: str | None = None,
) -> int:
    """POST ``payload`` as JSON; return the HTTP status, or raise DeliveryError (URL redacted)."""
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DeliveryError(f"refusing to post to a {scheme or 'scheme-less'} URL: only http(s) is allowed")
    context = ssl.create_default_context(cafile=ca_file)  # verification stays on; ca_file adds a CA
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _SameHostRedirects())
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "planmon-alerting", **(headers or {})},
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(MAX_ERROR_BODY).decode("utf-8", "replace") if exc.fp else ""
        raise DeliveryError(
            f"{redact_url(url)} answered HTTP {exc.code} {exc.reason}"
            + (f": {scrub_secrets(detail.strip())}" if detail.strip() else "")
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{redact_url(url)} unreachable: {scrub_secrets(str(reason))}") from None


@dataclass
class LogFileChannel:
    """The default channel: one JSON line per alert appended to a file, and one log line."""

    path: Path
    name: str = "log"

    def send(self, message: AlertMessage) -> None:
        record = {"channel": self.name, **message.as_dict()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        except OSError as exc:
            raise DeliveryError(
                f"channel {self.name!r} cannot append to {self.path}: {exc.strerror}"
            ) from None
        log.info("alert %s -> %s: %s", message.dedup_key, self.name, message.title)


@dataclass
class WebhookChannel:
    """A generic JSON POST: the message's ``as_dict()`` plus ``text`` (the plain-text rendering)."""

    name: str
    url: str
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None

    def send(self, message: AlertMessage) -> None:
        payload = {**message.as_dict(), "text": message.text}
        try:
            post_json(self.url, payload, timeout=self.timeout, headers=self.headers, ca_file=self.ca_file)
        except DeliveryError as exc:
            raise DeliveryError(f"webhook {self.name!r}: {exc.message}") from None
        log.info("alert %s -> webhook %s (%s)", message.dedup_key, self.name, redact_url(self.url))


def slack_payload(message: AlertMessage) -> dict[str, Any]:
    """Slack incoming-webhook JSON: header, body section, facts and links (mrkdwn escaped)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _slack_escape("\n".join(message.lines))[:3000]},
        },
    ]
    if message.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_slack_escape(label)}*\n{_slack_escape(value)}"}
                    for label, value in message.facts[:10]
                ],
            }
        )
    if message.links:
        links = " | ".join(f"<{url}|{_slack_escape(label)}>" for label, url in message.links)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    return {"text": message.title, "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class SlackWebhookChannel:
    """A Slack incoming webhook (the Slack provider is not needed: one JSON POST)."""

    name: str
    url: str
    timeout: float = 10.0

    def send(self, message: AlertMessage) -> None:
        try:
            post_json(self.url, slack_payload(message), timeout=self.timeout)
        except DeliveryError as exc:
            raise DeliveryError(f"slack {self.name!r}: {exc.message}") from None
        log.info("alert %s -> slack %s", message.dedup_key, self.name)


def slack_url_from_connection(connection: Any) -> str:
    """The webhook URL of a Slack webhook connection: the password holds the URL or its token part
    (as in the Slack provider's ``slackwebhook`` connection), the host optionally the base."""
    secret = str(connection.password or "")
    if secret.startswith(("https://", "http://")):
        return secret
    base = str(connection.host or SLACK_HOOKS).rstrip("/")
    if not base.startswith(("https://", "http://")):
        base = f"https://{base}"
    return f"{base}/{secret.lstrip('/')}"


def webhook_url_from_connection(connection: Any) -> str:
    """A generic webhook URL from an Airflow connection: ``host`` with scheme, or schema/host/port."""
    host = str(connection.host or "")
    if host.startswith(("https://", "http://")):
        return host
    scheme = connection.schema or "https"
    port = f":{connection.port}" if connection.port else ""
    return f"{scheme}://{host}{port}"


@dataclass
class SmtpChannel:
    """Mail through an SMTP relay named by an Airflow connection (host, port, login, password).

    STARTTLS is on by default (``use_ssl`` for implicit TLS); credentials are never sent over a
    session without TLS.
    """

    name: str
    conn_id: str
    recipients: tuple[str, ...]
    connection_getter: Callable[[str], Any]  # conn id -> connection (Airflow's lookup in production)
    sender: str | None = None
    starttls: bool = True
    use_ssl: bool = False
    timeout: float = 30.0

    def send(self, message: AlertMessage) -> None:
        connection = self.connection_getter(self.conn_id)
        mail = self._mail(message, connection)
        try:
            with self._session(connection) as session:
                session.send_message(mail)
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"smtp {self.name!r} via connection {self.conn_id!r}: {scrub_secrets(str(exc))}"
            ) from None
        log.info("alert %s -> smtp %s (%d recipient(s))", message.dedup_key, self.name, len(self.recipients))

    def _mail(self, message: AlertMessage, connection: Any) -> EmailMessage:
        extra = getattr(connection, "extra_dejson", None) or {}
        sender = self.sender or extra.get("from_email") or connection.login
        if not sender:
            raise DeliveryError(f"smtp {self.name!r}: no sender (set `from` in the channel or from_email)")
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = str(sender)
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(message.text)
        return mail

    def _session(self, connection: Any) -> smtplib.SMTP:
        host = str(connection.host or "localhost")
        context = ssl.create_default_context()
        if self.use_ssl:
            session: smtplib.SMTP = smtplib.SMTP_SSL(
                host, int(connection.port or 465), timeout=self.timeout, context=context
            )
        else:
            session = smtplib.SMTP(host, int(connection.port or 587), timeout=self.timeout)
        try:
            if self.starttls and not self.use_ssl:
                session.starttls(context=context)
            if connection.login:
                if not (self.use_ssl or self.starttls):
                    raise DeliveryError(
                        f"smtp {self.name!r}: refusing to send credentials without TLS "
                        "(enable starttls or ssl)"
                    )
                session.login(str(connection.login), str(connection.password or ""))
        except BaseException:
            session.close()
            raise
        return session


@dataclass
class BrokenChannel:
    """Stands in for a channel that could not be set up: every send fails with why (so the alert is
    recorded as failed and retried, while the other channels still deliver)."""

    name: str
    reason: str

    def send(self, message: AlertMessage) -> None:
        raise DeliveryError(f"channel {self.name!r} is not usable: {self.reason}")
