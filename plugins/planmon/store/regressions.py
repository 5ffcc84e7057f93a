"""Regressions as analysis writes them and everything else reads them.

One regression is open per (target, query, kind) at a time (``open_key = 'open'``; a closed one holds
its own id there, see the schema). Analysis records a batch of detections with a fixed number of
statements whatever its size: one read of the batch's open regressions, one multi-row insert of the
new ones and one read of their ids, one executemany per kind of update, and one insert of their
audit entries; all in one transaction, so a failure leaves nothing half-written and a retry of the
same window writes the same values (ADR 0002).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import String, bindparam, cast, insert, select, update
from sqlalchemy.engine import Connection

from planmon.store.audit import AuditEntry, append_audit
from planmon.store.repository import RepositoryView, as_utc_naive
from planmon.store.schema import plan, query, regression, target

RegressionKey = tuple[int, int, str]  # (target_id, query_id, kind)

# what a detection sets on its regression (the rest is its key, status and detection times)
REGRESSION_VALUES = (
    "severity", "metric", "baseline_plan_id", "current_plan_id", "baseline_mean", "current_mean",
    "ratio", "impact", "p_value", "evidence", "diff",
)  # fmt: skip
KEYS_PER_STATEMENT = 500  # (target, query, kind) tuples per IN list: far below every driver's limit


class RegressionStore(RepositoryView):
    """Regressions: recorded by analysis, resolved by analysis and remediation, listed by the rest."""

    def record_regressions(
        self, detections: Sequence[Mapping[str, Any]], *, detected_at: datetime
    ) -> list[int]:
        """Open or update one regression per (target, query, kind); their ids, in detection order.

        ``detected_at`` is the analysed window's end, so re-running an interval writes the same values
        and an older interval re-run after a newer one never overwrites the newer detection.
        """
        if not detections:
            return []
        detected_at = as_utc_naive(detected_at)
        latest = {_key(d): d for d in detections}  # one statement must not touch a key twice
        with self._errors("storing regressions"), self.engine.begin() as connection:
            existing = _open_by_key(connection, list(latest))
            new = [key for key in latest if key not in existing]
            _insert_new(connection, [latest[key] for key in new], detected_at)
            opened = _open_by_key(connection, new)
            _update_existing(connection, {key: latest[key] for key in existing}, existing, detected_at)
            append_audit(
                connection,
                *(
                    AuditEntry(
                        actor="planmon",
                        action="regression.open",
                        target_id=key[0],
                        subject=f"regression:{opened[key]['id']}",
                        details={"kind": key[2], "severity": latest[key].get("severity")},
                    )
                    for key in new
                ),
            )
        ids = {key: int(row["id"]) for key, row in {**existing, **opened}.items()}
        return [ids[_key(d)] for d in detections]

    def resolve_regressions(
        self, regression_ids: Sequence[int], *, resolved_at: datetime, reason: str
    ) -> int:
        """Close these open regressions (the query is back at its baseline); return how many closed."""
        resolved_at = as_utc_naive(resolved_at)
        if not regression_ids:
            return 0
        with self._errors("resolving regressions"), self.engine.begin() as connection:
            # one statement for the batch; a closed row's open_key is its id (frees the open slot)
            result = connection.execute(
                update(regression)
                .where(regression.c.id.in_(list(regression_ids)) & (regression.c.status == "open"))
                .values(status="resolved", open_key=cast(regression.c.id, String), resolved_at=resolved_at)
                .returning(regression.c.id)
            )
            closed = sorted(int(row[0]) for row in result)
            append_audit(
                connection,
                *(
                    AuditEntry(
                        actor="planmon",
                        action="regression.resolve",
                        subject=f"regression:{regression_id}",
                        details={"reason": reason},
                    )
                    for regression_id in closed
                ),
            )
        return len(closed)

    def regressions(
        self, *, status: str | None = None, target_ids: Sequence[int] | None = None
    ) -> pd.DataFrame:
        """Regressions with their target name, the engine's query identity and text, and plan keys."""
        base_plan, current_plan = plan.alias("base_plan"), plan.alias("current_plan")
        statement = (
            select(
                regression,
                target.c.name.label("target"),
                query.c.query_key,
                query.c.query_text,
                base_plan.c.plan_key.label("baseline_plan_key"),
                current_plan.c.plan_key.label("current_plan_key"),
            )
            .join(target, target.c.id == regression.c.target_id)
            .join(query, query.c.id == regression.c.query_id)
            .outerjoin(base_plan, base_plan.c.id == regression.c.baseline_plan_id)
            .outerjoin(current_plan, current_plan.c.id == regression.c.current_plan_id)
            .order_by(regression.c.id)
        )
        if status is not None:
            statement = statement.where(regression.c.status == status)
        if target_ids is not None:
            statement = statement.where(regression.c.target_id.in_(list(target_ids)))
        with self._errors("reading regressions"), self.engine.connect() as connection:
            return pd.read_sql(statement, connection)


def _key(detection: Mapping[str, Any]) -> RegressionKey:
    return (int(detection["target_id"]), int(detection["query_id"]), str(detection["kind"]))


def _open_by_key(
    connection: Connection, keys: Sequence[RegressionKey]
) -> dict[RegressionKey, dict[str, Any]]:
    """The open regressions of these keys: id and detection times, by key."""
    found: dict[RegressionKey, dict[str, Any]] = {}
    columns = (regression.c.target_id, regression.c.query_id, regression.c.kind)
    for first in range(0, len(keys), KEYS_PER_STATEMENT):
        chunk = keys[first : first + KEYS_PER_STATEMENT]
        statement = select(
            *columns, regression.c.id, regression.c.first_detected, regression.c.last_detected
        ).where(
            regression.c.open_key == "open",
            regression.c.target_id.in_(sorted({key[0] for key in chunk})),
            regression.c.query_id.in_(sorted({key[1] for key in chunk})),
        )  # no row-value IN: SQL Server has none; the few extra rows are filtered here
        wanted = set(chunk)
        for row in connection.execute(statement).mappings():
            key = (int(row["target_id"]), int(row["query_id"]), str(row["kind"]))
            if key in wanted:
                found[key] = dict(row)
    return found


def _insert_new(
    connection: Connection, detections: Sequence[Mapping[str, Any]], detected_at: datetime
) -> None:
    if not detections:
        return
    rows = [
        {
            "target_id": detection["target_id"],
            "query_id": detection["query_id"],
            "kind": detection["kind"],
            "status": "open",
            "open_key": "open",
            "first_detected": detected_at,
            "last_detected": detected_at,
            **{name: detection.get(name) for name in REGRESSION_VALUES},
        }
        for detection in detections
    ]
    connection.execute(insert(regression), rows)


def _update_existing(
    connection: Connection,
    detections: Mapping[RegressionKey, Mapping[str, Any]],
    existing: Mapping[RegressionKey, Mapping[str, Any]],
    detected_at: datetime,
) -> None:
    """A detection at or after the last one replaces its values; an older one (a backfill behind
    the newest run) only moves first_detected back."""
    newer, older = [], []
    for key, detection in detections.items():
        row = existing[key]
        first = min(row["first_detected"], detected_at)
        if detected_at >= row["last_detected"]:
            values = {f"new_{name}": detection.get(name) for name in REGRESSION_VALUES}
            newer.append({"row_id": row["id"], "first": first, **values})
        else:
            older.append({"row_id": row["id"], "first": first})
    by_id = regression.c.id == bindparam("row_id")
    if newer:
        # bind names must differ from column names in an UPDATE's SET clause
        values = {name: bindparam(f"new_{name}") for name in REGRESSION_VALUES}
        statement = (
            update(regression)
            .where(by_id)
            .values(first_detected=bindparam("first"), last_detected=detected_at, **values)
        )
        connection.execute(statement, newer)
    if older:
        connection.execute(update(regression).where(by_id).values(first_detected=bindparam("first")), older)
