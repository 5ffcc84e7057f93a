"""Safety rails: whether a stored proposal may run on its target now, and whether it needs a person.

Each rail that says no raises :class:`RemediationRefused` with a :class:`RefusalReason`; the caller
records the refusal (state ``refused``, audit entry) and nothing runs. The rails and what breaks
them are written down in docs/adr/0003-remediation-safety-rails.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from planmon.errors import ConfigError, RefusalReason, RemediationRefused
from planmon.model import Action, Target

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXECUTING_MODES = frozenset({"approve", "auto"})


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A daily UTC window [start, end) on the given weekdays; end before start wraps past midnight."""

    start: time
    end: time
    days: tuple[str, ...] = DAYS

    def contains(self, moment: datetime) -> bool:
        day = DAYS[moment.weekday()]
        clock = moment.time().replace(tzinfo=None)
        if self.start <= self.end:
            return day in self.days and self.start <= clock < self.end
        if clock >= self.start:  # the evening part belongs to the window's own day
            return day in self.days
        return DAYS[(moment.weekday() - 1) % 7] in self.days and clock < self.end

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "days": list(self.days),
        }


@dataclass(frozen=True, slots=True)
class RemediationPolicy:
    """A target's remediation rails, stored as JSON in ``target.remediation_policy``.

    ``allowed_actions``: None lets a person approve any action and nothing runs without approval;
    a list limits every mode to those actions, and in mode ``auto`` they run without approval.
    ``maintenance_windows``: empty means any time. ``assigned_users``: Airflow user ids who may
    answer the approval (empty: anyone with access to the DAG). ``max_actions_per_hour``: None uses
    PLANMON_REMEDIATION_MAX_ACTIONS_PER_HOUR; a policy can only lower it. ``approval_channels``: alert
    channels (names in the routing file) that hear about this target's approvals instead of the
    channels alert routing picks (empty: routed like alerts).
    """

    allowed_actions: tuple[Action, ...] | None = None
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    assigned_users: tuple[str, ...] = ()
    max_actions_per_hour: int | None = None
    approval_channels: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None, *, target: str = "?") -> RemediationPolicy:
        value = dict(value or {})
        try:
            allowed = value.pop("allowed_actions", None)
            windows = value.pop("maintenance_windows", None) or ()
            users = value.pop("assigned_users", None) or ()
            limit = value.pop("max_actions_per_hour", None)
            channels = value.pop("approval_channels", None) or ()
            if isinstance(channels, str):
                channels = (channels,)
            return cls(
                allowed_actions=None if allowed is None else tuple(Action(a) for a in allowed),
                maintenance_windows=tuple(_window(w) for w in windows),
                assigned_users=tuple(str(u) for u in users),
                max_actions_per_hour=None if limit is None else int(limit),
                approval_channels=tuple(str(c) for c in channels),
                extra=value,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"target {target!r} has an invalid remediation policy: {exc}",
                hint="allowed_actions: "
                + ", ".join(a.value for a in Action)
                + '; maintenance_windows: [{"start": "HH:MM", "end": "HH:MM", "days": ["sat", "sun"]}]',
            ) from exc

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed_actions": None
            if self.allowed_actions is None
            else [a.value for a in self.allowed_actions],
            "maintenance_windows": [w.as_dict() for w in self.maintenance_windows],
            "assigned_users": list(self.assigned_users),
            "max_actions_per_hour": self.max_actions_per_hour,
            "approval_channels": list(self.approval_channels),
        }

    def limit(self, default: int) -> int:
        return default if self.max_actions_per_hour is None else min(default, self.max_actions_per_hour)


def _window(value: Mapping[str, Any]) -> MaintenanceWindow:
    days = tuple(str(d).lower()[:3] for d in value.get("days") or DAYS)
    unknown = [d for d in days if d not in DAYS]
    if unknown:
        raise ValueError(f"unknown weekday(s) {unknown}")
    return MaintenanceWindow(time.fromisoformat(value["start"]), time.fromisoformat(value["end"]), days)


@dataclass(frozen=True, slots=True)
class RailInput:
    """Everything the rails look at, read by the caller from the store and the target."""

    target: Target
    action: Action
    now: datetime  # UTC
    applied_last_hour: int  # planmon's actions applied on the target in the hour before now
    max_actions_per_hour: int  # from settings
    foreign_forces: Sequence[str] = ()  # plans of the query forced by someone else or by APC
    undoes: int | None = None  # for undo actions: the remediation id being undone (None: not ours)


def policy_of(target: Target) -> RemediationPolicy:
    return RemediationPolicy.from_dict(target.remediation_policy, target=target.name)


def needs_approval(target: Target, action: Action) -> bool:
    """True unless the target is in ``auto`` mode and the action is on its allow-list."""
    allowed = policy_of(target).allowed_actions
    return not (target.remediation_mode == "auto" and allowed is not None and action in allowed)


def check(rails: RailInput) -> None:
    """Raise RemediationRefused for the first rail that says no; return when the action may run."""
    target, action = rails.target, rails.action
    policy = policy_of(target)
    if target.remediation_mode == "off":
        raise RemediationRefused(
            f"target {target.name!r} has remediation mode off",
            reason=RefusalReason.MODE_OFF,
            hint="`planmon targets` can set the mode to propose, approve or auto",
        )
    if target.remediation_mode not in EXECUTING_MODES:
        raise RemediationRefused(
            f"target {target.name!r} is in mode propose (dry run): the proposal is recorded, nothing runs",
            reason=RefusalReason.DRY_RUN,
            hint="set the target's mode to approve to let a person approve it",
        )
    if not target.remediation_conn_id:
        raise RemediationRefused(
            f"target {target.name!r} has no remediation connection id: planmon never acts through the "
            "collection connection",
            reason=RefusalReason.NO_CONNECTION,
            hint="register one: `planmon targets add ... --remediation-conn-id ID`",
        )
    if policy.allowed_actions is not None and action not in policy.allowed_actions:
        raise RemediationRefused(
            f"action {action.value} is not on target {target.name!r}'s allow-list "
            f"({', '.join(a.value for a in policy.allowed_actions) or 'empty'})",
            reason=RefusalReason.NOT_ALLOWED,
        )
    _check_rate_and_window(rails, policy)
    _check_ownership(rails)


def _check_rate_and_window(rails: RailInput, policy: RemediationPolicy) -> None:
    limit = policy.limit(rails.max_actions_per_hour)
    if rails.applied_last_hour >= limit:
        raise RemediationRefused(
            f"target {rails.target.name!r} had {rails.applied_last_hour} remediation(s) applied in the last "
            f"hour; the limit is {limit}",
            reason=RefusalReason.RATE_LIMIT,
            hint="trigger the remediation again later",
        )
    windows = policy.maintenance_windows
    if windows and not any(window.contains(rails.now) for window in windows):
        described = "; ".join(f"{w.start:%H:%M}-{w.end:%H:%M} UTC on {','.join(w.days)}" for w in windows)
        raise RemediationRefused(
            f"{rails.now:%Y-%m-%d %H:%M} UTC is outside target {rails.target.name!r}'s maintenance "
            f"windows ({described})",
            reason=RefusalReason.MAINTENANCE_WINDOW,
            hint="trigger the remediation again inside a window",
        )


def _check_ownership(rails: RailInput) -> None:
    if rails.foreign_forces and rails.action is not Action.UNFORCE_PLAN:
        raise RemediationRefused(
            f"the query has a plan forced by someone else ({', '.join(rails.foreign_forces)}): planmon "
            "does not act on it",
            reason=RefusalReason.FORCED_BY_OTHERS,
            hint="whoever forced it decides; unforce it yourself if the force is the problem",
        )
    if rails.action is Action.UNFORCE_PLAN and rails.undoes is None:
        raise RemediationRefused(
            "planmon only unforces plans it forced itself, and its ledger has no force of this plan",
            reason=RefusalReason.NOT_OURS,
        )


def passed(rails: RailInput) -> list[str]:
    """What each rail looked at when :func:`check` let the action through, one line each (the
    approval body's "Rails passed"); call it after ``check`` returned."""
    target, policy = rails.target, policy_of(rails.target)
    limit = policy.limit(rails.max_actions_per_hour)
    windows = policy.maintenance_windows
    inside = next((w for w in windows if w.contains(rails.now)), None)
    lines = [
        f"mode {target.remediation_mode}: runs only after a person approves"
        if needs_approval(target, rails.action)
        else f"mode {target.remediation_mode}: {rails.action.value} is allow-listed to run without a person",
        f"acts through the remediation connection {target.remediation_conn_id}, not the collection one",
        "no allow-list: a person may approve any action"
        if policy.allowed_actions is None
        else f"{rails.action.value} is on the allow-list",
        f"{rails.applied_last_hour} of at most {limit} action(s) applied on the target in the last hour",
        "no maintenance windows: any time"
        if inside is None
        else f"inside the maintenance window {inside.start:%H:%M}-{inside.end:%H:%M} UTC",
        "no plan of the query is forced by someone else"
        if rails.action is not Action.UNFORCE_PLAN
        else f"undoes planmon's own remediation {rails.undoes}",
    ]
    return [*lines, f"checked at {rails.now:%Y-%m-%d %H:%M} UTC"]
