"""Alert messages: what changed, the evidence numbers, the impact and links, with literals stripped.

A message is built once per regression (or digest) and rendered by each channel; its ``as_dict`` is
the payload stored in the ``alert`` row, so a failed delivery is retried with exactly what was built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from planmon.model import SEVERITIES, RegressionKind, Severity
from planmon.plans.normalize import strip_literals

MAX_DIFF_LINES = 12
MAX_QUERY_CHARS = 300
# PlanDiff.as_text()'s header holds only planmon's own statement index and shape hashes: kept as is.
_DIFF_HEADER = re.compile(r"^statement \d+: shape [\w-]+ -> [\w-]+$")
KIND_LABELS: dict[str, str] = {
    RegressionKind.PLAN_CHANGE: "plan change",
    RegressionKind.SAME_PLAN: "slower under the same plan",
    RegressionKind.PLAN_UNKNOWN: "slower, plan not known",
    RegressionKind.PARAMETER_SENSITIVE: "parameter-sensitive plan",
    RegressionKind.ERROR_PRONE: "more failed executions",
    RegressionKind.FORCED_PLAN_FAILURE: "forced plan failing",
}


def severity_rank(severity: str | None) -> int:
    """0 (info) to 4 (critical); an unknown severity ranks as low, so it never suppresses others."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else SEVERITIES.index(Severity.LOW)


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """The target a regression belongs to, as routing and messages need it (no connection ids)."""

    name: str
    engine: str = ""
    environment: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunLinks:
    """Where links point: the Airflow base URL (None: no links) and the run sending the alert."""

    base_url: str | None = None
    dag_id: str | None = None
    run_id: str | None = None

    def run_url(self) -> str | None:
        if not (self.base_url and self.dag_id and self.run_id):
            return None
        base, dag_id, run_id = (
            self.base_url.rstrip("/"),
            quote(self.dag_id, safe=""),
            quote(self.run_id, safe=""),
        )
        return f"{base}/dags/{dag_id}/runs/{run_id}"

    def regression_url(self, regression_id: int) -> str | None:
        return f"{self.base_url.rstrip('/')}/planmon/regressions/{regression_id}" if self.base_url else None


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One notification: a title, plain-text lines, labelled facts and links, plus machine data."""

    dedup_key: str
    kind: str  # regression / digest
    severity: str
    title: str
    lines: tuple[str, ...]
    facts: tuple[tuple[str, str], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The whole message as plain text (mail body, log line, webhook ``text``)."""
        parts = [self.title, "", *self.lines]
        if self.facts:
            parts += ["", *(f"{label}: {value}" for label, value in self.facts)]
        if self.links:
            parts += ["", *(f"{label}: {url}" for label, url in self.links)]
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "lines": list(self.lines),
            "facts": [list(fact) for fact in self.facts],
            "links": [list(link) for link in self.links],
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> AlertMessage:
        """The message stored in an alert row's payload (for retries)."""
        return cls(
            dedup_key=str(payload["dedup_key"]),
            kind=str(payload.get("kind", "regression")),
            severity=str(payload.get("severity", "low")),
            title=str(payload["title"]),
            lines=tuple(str(line) for line in payload.get("lines", ())),
            facts=tuple((str(a), str(b)) for a, b in payload.get("facts", ())),
            links=tuple((str(a), str(b)) for a, b in payload.get("links", ())),
            details=dict(payload.get("details", {})),
        )


def regression_dedup_key(regression_id: int, severity: str) -> str:
    return f"regression:{regression_id}:{severity}"


def digest_dedup_key(day: str) -> str:
    return f"digest:{day}"


def diff_summary(diff: Any, *, max_lines: int = MAX_DIFF_LINES) -> str | None:
    """Plain-text summary of a stored plan diff (``PlanDiff.as_dict()`` list, one dict, or text).

    Literals are stripped from every line: predicates in plans carry constants that may be personal data.
    """
    lines: list[str] = []
    if isinstance(diff, str):
        lines = diff.splitlines()
    elif isinstance(diff, Mapping):
        lines = _diff_lines(diff.get("statements", [diff]))
    elif isinstance(diff, Sequence):
        lines = _diff_lines(diff)
    lines = [
        line.strip() if _DIFF_HEADER.match(line.strip()) else strip_literals(line)
        for line in lines
        if line.strip()
    ]
    if not lines:
        return None
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... and {len(lines) - max_lines} more change(s)"]
    return "\n".join(lines)


def _diff_lines(statements: Sequence[Any]) -> list[str]:
    lines: list[str] = []
    for statement in statements:
        if not isinstance(statement, Mapping):
            continue
        if statement.get("text"):  # PlanDiff.as_text(): header and one line per change
            lines += str(statement["text"]).splitlines()
            continue
        for change in statement.get("changes", ()):
            if isinstance(change, Mapping) and change.get("message"):
                lines.append(str(change["message"]))
    return lines


def build_regression_message(
    regression: Mapping[str, Any],
    target: TargetInfo,
    *,
    diff_text: str | None,
    findings: Sequence[str] = (),
    baseline_findings: Sequence[str] = (),
    query_key: str | None = None,
    query_text: str | None = None,
    links: RunLinks | None = None,
    reason: str = "new",
) -> AlertMessage:
    """The message for one regression row (columns of the ``regression`` table).

    ``reason`` is why it is sent (new / escalated / repeat); ``findings`` are the current plan's
    finding ids, those not in ``baseline_findings`` are marked new.
    """
    links = links or RunLinks()
    regression_id = int(regression["id"])
    severity = str(regression["severity"])
    kind = str(regression["kind"])
    metric = str(regression.get("metric") or "")
    query_label = f"query {query_key}" if query_key else f"query #{regression['query_id']}"
    title = (
        f"[{severity.upper()}] {KIND_LABELS.get(kind, kind)} on {target.name}: {query_label}"
        f"{_ratio_phrase(metric, regression.get('ratio'))}" + (f" ({reason})" if reason != "new" else "")
    )
    lines = [_what_changed(kind, diff_text), *_findings_lines(findings, baseline_findings)]
    lines.append(f"Evidence: {_evidence(metric, regression)}")
    lines.append(f"Impact: {_impact(metric, regression.get('impact'))}")
    if query_text:
        lines.append(f"Query: {_short_query(query_text)}")
    facts = [
        (
            "Target",
            f"{target.name} ({target.engine or 'engine unknown'}, {target.environment or 'no environment'})",
        ),
        ("Severity", severity),
        ("Kind", kind),
        ("First detected", _when(regression.get("first_detected"))),
        ("Last detected", _when(regression.get("last_detected"))),
    ]
    if target.tags:
        facts.append(("Tags", ", ".join(f"{k}={v}" for k, v in sorted(target.tags.items()))))
    evidence = regression.get("evidence")
    if isinstance(evidence, Mapping) and evidence.get("rule"):
        facts.append(("Rule", str(evidence["rule"])))
    link_list = [
        (label, url)
        for label, url in (
            ("planmon", links.regression_url(regression_id)),
            ("Airflow run", links.run_url()),
        )
        if url
    ]
    details = {
        "regression_id": regression_id,
        "target": target.name,
        "environment": target.environment,
        "query_id": regression.get("query_id"),
        "query_key": query_key,
        "kind": kind,
        "metric": metric,
        "reason": reason,
        **{name: _number(regression.get(name)) for name in _EVIDENCE_COLUMNS},
    }
    return AlertMessage(
        dedup_key=regression_dedup_key(regression_id, severity),
        kind="regression",
        severity=severity,
        title=title,
        lines=tuple(lines),
        facts=tuple(facts),
        links=tuple(link_list),
        details=details,
    )


_EVIDENCE_COLUMNS = ("baseline_mean", "current_mean", "ratio", "impact", "p_value")


def _what_changed(kind: str, diff_text: str | None) -> str:
    if diff_text:
        return "What changed:\n" + "\n".join(f"  {line}" for line in diff_text.splitlines())
    if kind == RegressionKind.PLAN_CHANGE:
        return "What changed: the plan changed (no diff stored)."
    return f"What changed: {KIND_LABELS.get(kind, kind)}; the plan shape is unchanged or unknown."


def _findings_lines(findings: Sequence[str], baseline: Sequence[str]) -> list[str]:
    if not findings:
        return []
    new = sorted(set(findings) - set(baseline))
    text = ", ".join(sorted(set(findings)))
    return [f"Findings in the current plan: {text}" + (f" (new: {', '.join(new)})" if new else "")]


def _ratio_phrase(metric: str, ratio: Any) -> str:
    value = _number(ratio)
    if value is None:
        return ""
    return f" {_metric_label(metric)} x{value:.1f}"


def _metric_label(metric: str) -> str:
    return {"cpu_us": "CPU", "duration_us": "duration", "errors": "errors"}.get(metric, metric or "metric")


def _evidence(metric: str, regression: Mapping[str, Any]) -> str:
    baseline, current = _number(regression.get("baseline_mean")), _number(regression.get("current_mean"))
    parts = [
        f"{_metric_label(metric)} per execution {_amount(metric, baseline)} -> {_amount(metric, current)}"
    ]
    ratio, p_value = _number(regression.get("ratio")), _number(regression.get("p_value"))
    if ratio is not None:
        parts.append(f"x{ratio:.2f}")
    if p_value is not None:
        parts.append(f"p={p_value:.2g}")
    evidence = regression.get("evidence") or {}
    if isinstance(evidence, Mapping):
        for side in ("baseline", "current"):
            plan_evidence = evidence.get(f"{side}_plan")
            executions = _number(
                plan_evidence.get("executions")
                if isinstance(plan_evidence, Mapping)
                else evidence.get(f"{side}_executions")
            )
            if executions is not None:
                parts.append(f"{side} executions {executions:.0f}")
        if evidence.get("classification"):
            parts.append(f"classified {evidence['classification']}")
    return ", ".join(parts)


def _amount(metric: str, value: float | None) -> str:
    if value is None:
        return "?"
    if metric.endswith("_us"):
        return f"{value / 1000:.2f} ms"
    return f"{value:.2f}"


def _impact(metric: str, impact: Any) -> str:
    value = _number(impact)
    if value is None:
        return "not measured"
    unit = "CPU" if metric == "cpu_us" else "duration" if metric == "duration_us" else metric
    return f"+{value:.1f} {unit} seconds per hour"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number  # NaN (pandas' missing value) is no number


def _short_query(text: str) -> str:
    stripped = strip_literals(text)
    return stripped if len(stripped) <= MAX_QUERY_CHARS else stripped[: MAX_QUERY_CHARS - 3] + "..."


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value) if value is not None else "?"


def build_digest_message(
    day: str,
    regressions: Sequence[tuple[Mapping[str, Any], TargetInfo, str | None]],
    *,
    links: RunLinks | None = None,
    top: int = 10,
) -> AlertMessage:
    """The daily digest: open regressions counted by severity and kind, the top ones by impact.

    ``regressions`` holds (regression row, target, query key) triples.
    """
    links = links or RunLinks()
    by_severity: dict[str, int] = {severity: 0 for severity in SEVERITIES}
    by_kind: dict[str, int] = {}
    for row, _target, _key in regressions:
        by_severity[str(row["severity"])] = by_severity.get(str(row["severity"]), 0) + 1
        by_kind[str(row["kind"])] = by_kind.get(str(row["kind"]), 0) + 1
    worst = max((severity_rank(str(row["severity"])) for row, _t, _k in regressions), default=0)
    ranked = sorted(regressions, key=lambda item: -(_number(item[0].get("impact")) or 0.0))
    lines = [
        f"{len(regressions)} open regression(s): "
        + ", ".join(f"{count} {severity}" for severity, count in by_severity.items() if count),
    ]
    if by_kind:
        lines.append("By kind: " + ", ".join(f"{count} {kind}" for kind, count in sorted(by_kind.items())))
    for row, target, key in ranked[:top]:
        url = links.regression_url(int(row["id"]))
        lines.append(
            f"- [{row['severity']}] {target.name} {row['kind']} query {key or row['query_id']}"
            f"{_ratio_phrase(str(row.get('metric') or ''), row.get('ratio'))}, "
            f"impact {_impact(str(row.get('metric') or ''), row.get('impact'))}" + (f" {url}" if url else "")
        )
    if len(ranked) > top:
        lines.append(f"... and {len(ranked) - top} more")
    run_url = links.run_url()
    return AlertMessage(
        dedup_key=digest_dedup_key(day),
        kind="digest",
        severity=SEVERITIES[worst] if regressions else "low",
        title=f"planmon daily digest {day}: {len(regressions)} open regression(s)",
        lines=tuple(lines),
        links=(("Airflow run", run_url),) if run_url else (),
        details={"day": day, "open": len(regressions), "by_severity": by_severity, "by_kind": by_kind},
    )


# -- probes ---------------------------------------------------------------------------------------

# A probe status as an alert severity (routing's min_severity applies to it like to regressions).
PROBE_STATUS_SEVERITY = {
    "warning": "medium",
    "critical": "critical",
    "error": "high",
    "timeout": "high",
    "refused": "medium",
}
PROBE_PLAN_CHANGE_SEVERITY = "high"
PROBE_KIND = "probe"
PROBE_PLAN_CHANGE_KIND = "probe_plan_change"


@dataclass(frozen=True, slots=True)
class ProbeFacts:
    """What a probe alert says about the probe and the result that raised it."""

    probe_id: int
    target_id: int
    probe_name: str
    probe_kind: str
    description: str | None
    sql: str | None
    operator: str
    warning: float | None
    critical: float | None
    result_id: int
    run_at: datetime
    status: str
    value: float | None
    duration_ms: float | None
    error: str | None
    since: datetime
    breaching_rows: tuple[str, ...] = ()


def probe_dedup_key(probe_id: int, target_id: int, status: str, since: datetime) -> str:
    """One key per (probe, target, status) for as long as that status lasts without interruption.

    ``since`` is the run that started the streak: a breach that stays breached keeps its key (alerted
    once); after a recovery, a new breach starts a new streak and alerts again.
    """
    return f"probe:{probe_id}:{target_id}:{status}:{since.strftime('%Y%m%dT%H%M%S')}"


def probe_plan_dedup_key(probe_id: int, target_id: int, run_at: datetime) -> str:
    return f"probe-plan:{probe_id}:{target_id}:{run_at.strftime('%Y%m%dT%H%M%S')}"


def build_probe_message(
    facts: ProbeFacts, target: TargetInfo, *, links: RunLinks | None = None
) -> AlertMessage:
    """The message for a probe result in breach (warning / critical) or failing (error/timeout/refused)."""
    links = links or RunLinks()
    severity = PROBE_STATUS_SEVERITY.get(facts.status, "medium")
    if facts.status in ("warning", "critical"):
        threshold = facts.critical if facts.status == "critical" else facts.warning
        headline = f"value {_format_value(facts.value)} {facts.operator} {_format_value(threshold)}"
    else:
        headline = facts.status
    title = f"[{facts.status.upper()}] probe {facts.probe_name} on {target.name}: {headline}"
    lines = [facts.description] if facts.description else []
    lines.append(
        f"Thresholds: warning {facts.operator} {_format_value(facts.warning)}, "
        f"critical {facts.operator} {_format_value(facts.critical)}; value {_format_value(facts.value)}"
        + (f" in {facts.duration_ms:.0f} ms" if facts.duration_ms is not None else "")
    )
    if facts.error:
        lines.append(f"Error: {facts.error}")
    if facts.breaching_rows:
        lines.append("Rows in breach:")
        lines += [f"  {strip_literals(row)}" for row in facts.breaching_rows]
    if facts.sql:
        lines.append(f"Query: {_short_query(facts.sql)}")
    return AlertMessage(
        dedup_key=probe_dedup_key(facts.probe_id, facts.target_id, facts.status, facts.since),
        kind=PROBE_KIND,
        severity=severity,
        title=title,
        lines=tuple(lines),
        facts=_probe_facts(facts, target),
        links=_run_links(links),
        details=_probe_details(facts, target),
    )


def build_probe_plan_change_message(
    facts: ProbeFacts,
    target: TargetInfo,
    *,
    previous_hash: str,
    current_hash: str,
    previous_run_at: datetime,
    links: RunLinks | None = None,
) -> AlertMessage:
    """A critical probe's plan shape changed: reported before its runtime has a chance to regress."""
    links = links or RunLinks()
    title = (
        f"[{PROBE_PLAN_CHANGE_SEVERITY.upper()}] plan change of critical probe {facts.probe_name} "
        f"on {target.name}"
    )
    lines = [
        f"What changed: the plan shape of the probe's query went {previous_hash[:16]} -> {current_hash[:16]} "
        f"between {_when(previous_run_at)} and {_when(facts.run_at)}.",
        f"The probe itself is {facts.status} (value {_format_value(facts.value)}"
        + (f", {facts.duration_ms:.0f} ms" if facts.duration_ms is not None else "")
        + "); the plan changed before any threshold says so.",
    ]
    if facts.sql:
        lines.append(f"Query: {_short_query(facts.sql)}")
    details = {
        **_probe_details(facts, target),
        "previous_plan_shape_hash": previous_hash,
        "plan_shape_hash": current_hash,
    }
    return AlertMessage(
        dedup_key=probe_plan_dedup_key(facts.probe_id, facts.target_id, facts.run_at),
        kind=PROBE_PLAN_CHANGE_KIND,
        severity=PROBE_PLAN_CHANGE_SEVERITY,
        title=title,
        lines=tuple(lines),
        facts=_probe_facts(facts, target),
        links=_run_links(links),
        details=details,
    )


def _probe_facts(facts: ProbeFacts, target: TargetInfo) -> tuple[tuple[str, str], ...]:
    rows = [
        (
            "Target",
            f"{target.name} ({target.engine or 'engine unknown'}, {target.environment or 'no environment'})",
        ),
        ("Probe", f"{facts.probe_name} ({facts.probe_kind})"),
        ("Status", facts.status),
        ("Run at", _when(facts.run_at)),
        ("Since", _when(facts.since)),
    ]
    if target.tags:
        rows.append(("Tags", ", ".join(f"{k}={v}" for k, v in sorted(target.tags.items()))))
    return tuple(rows)


def _probe_details(facts: ProbeFacts, target: TargetInfo) -> dict[str, Any]:
    return {
        "probe_id": facts.probe_id,
        "probe": facts.probe_name,
        "probe_result_id": facts.result_id,
        "target": target.name,
        "environment": target.environment,
        "status": facts.status,
        "value": _number(facts.value),
        "operator": facts.operator,
        "warning": facts.warning,
        "critical": facts.critical,
        "run_at": facts.run_at.isoformat(),
        "since": facts.since.isoformat(),
        "reason": "new",
    }


def _run_links(links: RunLinks) -> tuple[tuple[str, str], ...]:
    url = links.run_url()
    return (("Airflow run", url),) if url else ()


def _format_value(value: float | None) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:g}"
