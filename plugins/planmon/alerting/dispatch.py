"""Which alerts go out, and the record of every delivery.

- New: an open regression with no alert on a channel is sent there (dedup key
  ``regression:{id}:{severity}``).
- Escalated: a severity above every severity already alerted for that regression on that channel
  gets its own key and is sent; the same or a lower severity is not (the digest shows those).
- Dedup and cooldown: a key already sent on a channel is sent again only when the regression was
  detected again after that delivery and ``alert_cooldown_minutes`` have passed since it.
- Probes (:meth:`Dispatcher.send_probe_alerts`): a probe alert's key already names its streak
  (``probe:{probe}:{target}:{status}:{since}``) or plan change, so it is sent once per channel and
  never repeated; the ``alert`` row points at the ``probe_result`` that raised it.
- Approvals (:meth:`Dispatcher.send_approval_message`, :meth:`Dispatcher.remind_approvals`): keyed
  ``approval:{remediation}:{run}:{event}``, sent once per channel to the target policy's
  ``approval_channels`` or where routing sends the target's alerts; a reminder goes where the
  waiting message went, once, when its time has come and the remediation still waits.
- Delivery: the row is written ``pending`` (attempt counted) before sending, then ``sent`` or
  ``failed`` with the scrubbed error. Pending and failed rows are retried on later runs until
  ``max_attempts``; rows out of attempts stay ``failed`` and are counted, never deleted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from planmon.alerting.approvals import ApprovalEvent, channels_of, reminder_from, target_of
from planmon.alerting.channels import BrokenChannel, Channel
from planmon.alerting.messages import (
    AlertMessage,
    RunLinks,
    TargetInfo,
    build_digest_message,
    build_regression_message,
    diff_summary,
    digest_dedup_key,
    regression_dedup_key,
    severity_rank,
)
from planmon.alerting.routing import RoutingConfig
from planmon.errors import scrub_secrets
from planmon.store.alerts import AlertRecord, AlertStore, OpenRegression
from planmon.store.repository import utcnow

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


@dataclass
class DispatchResult:
    """What one dispatch (or digest) did, for the task's XCom and log (no secrets, no payloads)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    given_up: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "retried": self.retried,
            "given_up": self.given_up,
            "skipped": dict(sorted(self.skipped.items())),
            "by_channel": {
                f"{channel}.{status}": count for (channel, status), count in sorted(self.outcomes.items())
            },
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one channel, and the row it updates (None: a new row)."""

    message: AlertMessage
    channel: str
    reason: str  # new / escalated / repeat / retry / digest
    regression_id: int | None = None
    previous: AlertRecord | None = None
    probe_result_id: int | None = None


@dataclass(frozen=True, slots=True)
class ProbeAlert:
    """A probe alert to send: its message, the target (for routing) and the result that raised it."""

    message: AlertMessage
    target: TargetInfo
    probe_result_id: int


def target_info(regression: OpenRegression) -> TargetInfo:
    return TargetInfo(
        name=regression.target_name,
        engine=regression.engine,
        environment=regression.environment,
        tags=regression.tags,
    )


class Dispatcher:
    """Decides, sends and records alerts over an :class:`AlertStore`."""

    def __init__(
        self,
        store: AlertStore,
        routing: RoutingConfig,
        channels: Mapping[str, Channel],
        *,
        cooldown: timedelta,
        max_attempts: int,
        links: RunLinks | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.routing = routing
        self.channels = channels
        self.cooldown = cooldown
        self.max_attempts = max_attempts
        self.links = links or RunLinks()
        self.clock = clock

    # -- regressions ------------------------------------------------------------------------------

    def dispatch(self) -> DispatchResult:
        """Retry undelivered alerts, then send new, escalated and due repeated ones."""
        result = DispatchResult()
        self._deliver_all(self._retries(result), result)
        regressions = self.store.open_regressions()
        existing: dict[tuple[int, str], list[AlertRecord]] = {}
        for record in self.store.alerts_for_regressions(r.id for r in regressions):
            if record.regression_id is not None:
                existing.setdefault((record.regression_id, record.channel), []).append(record)
        deliveries = []
        for regression in regressions:
            deliveries += self._decide(regression, existing, result)
        self._deliver_all(deliveries, result)
        result.given_up = self.store.given_up_count(self.max_attempts)
        log.info("alert dispatch over %d open regression(s): %s", len(regressions), result.as_dict())
        if result.given_up:
            log.warning(
                "%d alert(s) failed %d times and are no longer retried (alert.status = 'failed')",
                result.given_up,
                self.max_attempts,
            )
        return result

    def _retries(self, result: DispatchResult) -> list[Delivery]:
        deliveries = []
        for record in self.store.retryable_alerts(self.max_attempts):
            try:
                message = AlertMessage.from_dict(record.payload)
            except (KeyError, TypeError, ValueError):
                message = AlertMessage(
                    dedup_key=record.dedup_key, kind="unknown", severity="low",
                    title=f"planmon alert {record.dedup_key}", lines=("(stored payload unreadable)",),
                )  # fmt: skip
            deliveries.append(
                Delivery(
                    message,
                    record.channel,
                    "retry",
                    record.regression_id,
                    record,
                    probe_result_id=record.probe_result_id,
                )
            )
            result.retried += 1
        return deliveries

    def _decide(
        self,
        regression: OpenRegression,
        existing: Mapping[tuple[int, str], Sequence[AlertRecord]],
        result: DispatchResult,
    ) -> list[Delivery]:
        target = target_info(regression)
        channels = self.routing.channels_for(target, severity=regression.severity, kind=regression.kind)
        if not channels:
            result.skipped["unrouted"] += 1
            return []
        key = regression_dedup_key(regression.id, regression.severity)
        deliveries = []
        message: AlertMessage | None = None
        for channel in channels:
            records = existing.get((regression.id, channel), ())
            reason = self._reason(regression, key, records)
            if reason not in ("new", "escalated", "repeat"):
                result.skipped[reason] += 1
                log.debug("alert %s on %s not sent: %s", key, channel, reason)
                continue
            if message is None or message.details.get("reason") != reason:
                message = self._message(regression, target, reason)
            previous = next((r for r in records if r.dedup_key == key), None)
            deliveries.append(Delivery(message, channel, reason, regression.id, previous))
        return deliveries

    def _reason(self, regression: OpenRegression, key: str, records: Sequence[AlertRecord]) -> str:
        """new / escalated / repeat (send), or why not: dedup, cooldown, not_escalated, undelivered."""
        same_key = next((r for r in records if r.dedup_key == key), None)
        if same_key is None:
            if not records:
                return "new"
            alerted = max(severity_rank(_severity_of(r.dedup_key)) for r in records)
            return "escalated" if severity_rank(regression.severity) > alerted else "not_escalated"
        if same_key.status != "sent" or same_key.sent_at is None:
            return "undelivered"  # the retry path owns it (or it is out of attempts)
        last_detected = regression.row.get("last_detected")
        if last_detected is None or last_detected <= same_key.sent_at:
            return "dedup"
        if self.clock() - same_key.sent_at < self.cooldown:
            return "cooldown"
        return "repeat"

    def _message(self, regression: OpenRegression, target: TargetInfo, reason: str) -> AlertMessage:
        return build_regression_message(
            regression.row,
            target,
            diff_text=diff_summary(regression.row.get("diff")),
            findings=regression.current_findings,
            baseline_findings=regression.baseline_findings,
            query_key=regression.query_key,
            query_text=regression.query_text,
            links=self.links,
            reason=reason,
        )

    # -- probes -----------------------------------------------------------------------------------

    def send_probe_alerts(self, alerts: Sequence[ProbeAlert]) -> DispatchResult:
        """Send each probe alert to its routed channels, once per key and channel (dedup)."""
        result = DispatchResult()
        deliveries = []
        for item in alerts:
            channels = self.routing.channels_for(
                item.target, severity=item.message.severity, kind=item.message.kind
            )
            if not channels:
                result.skipped["unrouted"] += 1
                continue
            recorded = {record.channel for record in self.store.alerts_with_key(item.message.dedup_key)}
            for channel in channels:
                if channel in recorded:
                    result.skipped["dedup"] += 1
                    log.debug("alert %s on %s not sent: dedup", item.message.dedup_key, channel)
                    continue
                deliveries.append(
                    Delivery(item.message, channel, "new", probe_result_id=item.probe_result_id)
                )
        self._deliver_all(deliveries, result)
        if alerts:
            log.info("probe alerts (%d raised): %s", len(alerts), result.as_dict())
        return result

    # -- approvals --------------------------------------------------------------------------------

    def send_approval_message(self, message: AlertMessage) -> DispatchResult:
        """Send an approval message (planmon.alerting.approvals) once per channel (dedup)."""
        result = DispatchResult()
        channels = list(channels_of(message)) or self.routing.channels_for(
            target_of(message), severity=message.severity, kind=None
        )
        if not channels:
            result.skipped["unrouted"] += 1
            return result
        recorded = {record.channel for record in self.store.alerts_with_key(message.dedup_key)}
        deliveries = []
        for channel in channels:
            if channel in recorded:
                result.skipped["dedup"] += 1
                continue
            deliveries.append(Delivery(message, channel, "new"))
        self._deliver_all(deliveries, result)
        log.info("approval message %s: %s", message.dedup_key, result.as_dict())
        return result

    def remind_approvals(self) -> DispatchResult:
        """Remind each channel that heard of a still-waiting approval, once, from its reminder time
        (``PLANMON_REMEDIATION_REMINDER_SHARE`` of the timeout) until the timeout."""
        result = DispatchResult()
        now = self.clock()
        deliveries = []
        for record, state in self.store.waiting_approvals():
            try:
                waiting = AlertMessage.from_dict(record.payload)
            except (KeyError, TypeError, ValueError):
                result.skipped["unreadable"] += 1
                continue
            reminder_at, timeout_at = (
                _moment(waiting.details.get("reminder_at")),
                _moment(waiting.details.get("timeout_at")),
            )
            if state != "proposed":
                result.skipped["answered"] += 1
            elif reminder_at is None or now < reminder_at:
                result.skipped["not_due"] += 1
            elif timeout_at is not None and now >= timeout_at:
                result.skipped["timed_out"] += 1
            else:
                reminder = reminder_from(waiting)
                sent = {r.channel for r in self.store.alerts_with_key(reminder.dedup_key)}
                if record.channel in sent:
                    result.skipped["dedup"] += 1
                else:
                    deliveries.append(Delivery(reminder, record.channel, ApprovalEvent.REMINDER.value))
        self._deliver_all(deliveries, result)
        if deliveries:
            log.info("approval reminders: %s", result.as_dict())
        return result

    # -- digest -----------------------------------------------------------------------------------

    def digest(self) -> DispatchResult:
        """Send today's digest to each digest channel that has none yet (key ``digest:{date}``)."""
        result = DispatchResult()
        config = self.routing.digest
        if config is None:
            result.skipped["digest_not_configured"] += 1
            log.info("no daily digest configured (routing file has no digest section)")
            return result
        now = self.clock()
        if now.hour < config.hour_utc:
            result.skipped["before_digest_hour"] += 1
            log.info("daily digest waits until %02d:00 UTC", config.hour_utc)
            return result
        day = now.date().isoformat()
        recorded = {record.channel for record in self.store.alerts_with_key(digest_dedup_key(day))}
        channels = [channel for channel in config.channels if channel not in recorded]
        if not channels:
            result.skipped["dedup"] += len(config.channels)
            log.info("daily digest %s already recorded on %s", day, ", ".join(config.channels))
            return result
        regressions = [
            (r.row, target_info(r), r.query_key)
            for r in self.store.open_regressions()
            if config.match.matches(target_info(r), severity=r.severity, kind=r.kind)
        ]
        message = build_digest_message(day, regressions, links=self.links, top=config.top)
        self._deliver_all([Delivery(message, channel, "digest") for channel in channels], result)
        log.info("daily digest %s over %d open regression(s): %s", day, len(regressions), result.as_dict())
        return result

    # -- delivery ---------------------------------------------------------------------------------

    def _deliver_all(self, deliveries: Sequence[Delivery], result: DispatchResult) -> None:
        """Record every delivery as pending (attempt counted) in one write, then send each and
        record its outcome at once, so a crash leaves at most the in-flight one pending."""
        now = self.clock()
        pending = [self._pending(delivery, now) for delivery in deliveries]
        self.store.record(pending)
        for delivery, record in zip(deliveries, pending, strict=True):
            outcome = self._send(delivery, record)
            self.store.record([outcome])
            result.outcomes[(delivery.channel, outcome.status)] += 1
            if outcome.status == "sent":
                result.sent += 1
            else:
                result.failed += 1

    def _pending(self, delivery: Delivery, now: datetime) -> AlertRecord:
        previous = delivery.previous
        retrying = previous is not None and previous.status != "sent"
        return AlertRecord(
            dedup_key=delivery.message.dedup_key,
            channel=delivery.channel,
            status="pending",
            attempts=(previous.attempts if retrying and previous else 0) + 1,
            payload=delivery.message.as_dict(),
            created_at=previous.created_at if previous else now,
            regression_id=delivery.regression_id,
            probe_result_id=delivery.probe_result_id,
            last_error=previous.last_error if retrying and previous else None,
            sent_at=previous.sent_at if previous else None,
        )

    def _send(self, delivery: Delivery, record: AlertRecord) -> AlertRecord:
        channel = self.channels.get(delivery.channel) or BrokenChannel(
            delivery.channel, "not defined in the routing file any more"
        )
        try:
            channel.send(delivery.message)
        except Exception as exc:  # any failure of any channel is recorded, never raised: others still go
            error = _error_text(exc)
            log.warning(
                "alert %s on %s failed (attempt %d of %d, %s): %s",
                record.dedup_key,
                delivery.channel,
                record.attempts,
                self.max_attempts,
                delivery.reason,
                error,
            )
            return replace(record, status="failed", last_error=error)
        log.info(
            "alert %s sent on %s (%s, attempt %d)",
            record.dedup_key,
            delivery.channel,
            delivery.reason,
            record.attempts,
        )
        return replace(record, status="sent", sent_at=self.clock(), last_error=None)


def _moment(value: Any) -> datetime | None:
    """A stored ISO time as naive UTC (the repository's convention), None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _severity_of(dedup_key: str) -> str:
    return dedup_key.rsplit(":", 1)[-1]


def _error_text(exc: BaseException) -> str:
    text = scrub_secrets(f"{type(exc).__name__}: {exc}").strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
