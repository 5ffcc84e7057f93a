"""Run one probe on one target: guard (the engine's allow-list guard), read-only session with a
statement timeout, the login's privilege check, evaluation, plan.

Nothing here raises for a probe's own failure: a refused statement, a login too powerful to run
probes through, a timeout, a driver error or an unusable result is an outcome with a status
(``refused`` / ``timeout`` / ``error``) and a scrubbed message, stored like any other result. Only
planmon's own problems (an engine without probe support) raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from planmon.engines import Engine, get_engine
from planmon.engines.base import ConnectionFactory, ProbePrivileges, ProbeSession
from planmon.errors import ConfigError, EngineError, EngineErrorReason, PlanParseError, scrub_secrets
from planmon.model import Target
from planmon.model.probes import ProbeDefinition
from planmon.plans import parse_plan, shape_hash
from planmon.probes import evaluate

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """The result of one probe on one target (a ``probe_result`` row without its keys)."""

    status: str  # ok / warning / critical / error / timeout / refused
    value: float | None = None
    duration_ms: float | None = None
    error: str | None = None  # scrubbed, one line
    plan_shape_hash: str | None = None
    plan_error: str | None = None  # why no plan was captured (the probe itself may still be fine)
    breaching_rows: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "value": self.value,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "plan_shape_hash": self.plan_shape_hash,
            "plan_error": self.plan_error,
            "breaching_rows": list(self.breaching_rows),
        }


def guard(probe: ProbeDefinition, engine: str, allowed_functions: Collection[str] = ()) -> str | None:
    """Why ``probe``'s SQL for ``engine`` is refused, or None when the engine's guard accepts it
    (``allowed_functions``: the deployment's PLANMON_PROBE_ALLOWED_FUNCTIONS)."""
    sql = probe.sql_for(engine)
    if sql is None:
        return f"the probe has no SQL for {engine}"
    accepted, reason = get_engine(engine).classify_probe(sql, extra_functions=allowed_functions)
    return None if accepted else f"refused: the SQL {reason}"


def run_probe(
    probe: ProbeDefinition,
    target: Target,
    connect: ConnectionFactory,
    *,
    default_timeout_seconds: float,
    max_rows: int,
    allow_privileged: bool = False,
    allowed_functions: Collection[str] = (),
) -> ProbeOutcome:
    """Run ``probe`` on ``target`` once; the outcome says what happened (never raises for the probe).

    Before any statement of the probe is sent, the session's login is checked (once per session):
    a login that can do more than read (superuser, SUPER, sysadmin, ...: see the engines'
    ``probe_privileges``) refuses the run unless ``allow_privileged`` (``PLANMON_PROBES_ALLOW_PRIVILEGED``
    lists the target), which only logs a warning.
    """
    sql = probe.sql_for(target.engine)
    if sql is None:
        raise ConfigError(f"probe {probe.name!r} has no SQL for {target.engine} (target {target.name!r})")
    refusal = guard(probe, target.engine, allowed_functions)
    if refusal is not None:
        log.warning("probe %s on %s %s", probe.name, target.name, refusal)
        return ProbeOutcome(evaluate.REFUSED, error=refusal)
    timeout_ms = max(1, round((probe.timeout_seconds or default_timeout_seconds) * 1000))
    engine = get_engine(target.engine)
    try:
        session = engine.probe_session(connect, timeout_ms, probe.database)
    except Exception as exc:  # the hook and the driver raise many types; all are this probe's failure
        return _failed(engine, exc, "connecting", timeout_ms)
    try:
        refused = check_login(session, engine, probe, target, allow_privileged=allow_privileged)
        if refused is not None:
            return refused
        return _run_in_session(probe, target, engine, session, sql, timeout_ms=timeout_ms, max_rows=max_rows)
    finally:
        try:
            session.close()
        except Exception as exc:  # closing a broken connection: nothing to do but say so
            log.info("probe %s on %s: closing the connection failed: %s", probe.name, target.name, exc)


LOGIN_DOCS = 'docs/probes.md, "The probe login"'


def check_login(
    session: ProbeSession, engine: Engine, probe: ProbeDefinition, target: Target, *, allow_privileged: bool
) -> ProbeOutcome | None:
    """None when the probe may run through this session's login; else the outcome that says why not."""
    try:
        privileges = session.privileges()
    except Exception as exc:  # driver errors of any engine: the check could not be made
        failure = engine.driver_failure(exc)
        message = failure[1] if failure else scrub_secrets(f"{type(exc).__name__}: {exc}")
        if allow_privileged:
            log.warning(
                "probe %s on %s: login check failed (%s); running anyway", probe.name, target.name, message
            )
            return None
        return ProbeOutcome(
            evaluate.ERROR,
            error=_short(f"checking the probe login's privileges failed, the probe was not run: {message}"),
        )
    if not privileges.too_powerful:
        return None
    if allow_privileged:
        log.warning(
            "probe %s on %s: login %s is too powerful (%s); running anyway: PLANMON_PROBES_ALLOW_PRIVILEGED "
            "lists the target",
            probe.name,
            target.name,
            privileges.login,
            "; ".join(privileges.excess),
        )
        return None
    log.warning(
        "probe %s on %s refused: login %s is too powerful (%d excess privilege(s))",
        probe.name,
        target.name,
        privileges.login,
        len(privileges.excess),
    )
    return ProbeOutcome(evaluate.REFUSED, error=_short(login_refusal(privileges)))


def login_refusal(privileges: ProbePrivileges) -> str:
    """The stored reason of a run refused for its login: what it holds and what to do instead."""
    return (
        f"refused: the probe login {privileges.login} is too powerful to run probes through: "
        f"{'; '.join(privileges.excess)}. The probe was not run. Give the target's connection a "
        f"dedicated login that can only read ({LOGIN_DOCS})"
    )


def _run_in_session(
    probe: ProbeDefinition,
    target: Target,
    engine: Engine,
    session: ProbeSession,
    sql: str,
    *,
    timeout_ms: int,
    max_rows: int,
) -> ProbeOutcome:
    # The plan first: EXPLAIN does not execute, so a probe that then times out still has its plan.
    plan_hash, plan_error = _capture_plan(session, sql, engine) if probe.capture_plan else (None, None)
    began = time.monotonic()
    try:
        columns, rows, truncated = session.run(sql, max_rows)
    except Exception as exc:  # driver errors of any engine: recorded as this probe's outcome
        failed = _failed(engine, exc, "running", timeout_ms)
        return replace(
            failed,
            duration_ms=_elapsed_ms(began),
            plan_shape_hash=plan_hash,
            plan_error=plan_error,
        )
    duration_ms = _elapsed_ms(began)
    evaluation = evaluate.evaluate_result(probe, columns, rows, truncated=truncated)
    log.info(
        "probe %s on %s: %s (value %s, %.0f ms%s)",
        probe.name,
        target.name,
        evaluation.status,
        evaluation.value,
        duration_ms,
        f", plan {plan_hash[:12]}" if plan_hash else "",
    )
    return ProbeOutcome(
        status=evaluation.status,
        value=evaluation.value,
        duration_ms=duration_ms,
        error=evaluation.error,
        plan_shape_hash=plan_hash,
        plan_error=plan_error,
        breaching_rows=evaluation.breaching_rows,
    )


def _capture_plan(session: ProbeSession, sql: str, engine: Engine) -> tuple[str | None, str | None]:
    """(shape hash, None) or (None, why not): a failed capture never fails the probe."""
    try:
        body = session.explain(sql)
        plan = parse_plan(body, engine=engine.plan_format, source="probe plan")
    except PlanParseError as exc:
        return None, _short(f"plan not parsed: {exc.message}")
    except Exception as exc:  # driver errors of any engine, or an unexplainable statement
        failure = engine.driver_failure(exc)
        return None, _short(f"no plan: {failure[1] if failure else scrub_secrets(str(exc))}")
    if not plan.statements:
        return None, "no plan: the EXPLAIN output holds no statement"
    return shape_hash(plan.statements[0]), None


def _failed(engine: Engine, exc: BaseException, doing: str, timeout_ms: int) -> ProbeOutcome:
    if isinstance(exc, EngineError):
        reason, message = exc.reason, exc.message
    elif (failure := engine.driver_failure(exc)) is not None:
        reason, message = failure
    else:
        reason, message = EngineErrorReason.QUERY_FAILED, scrub_secrets(f"{type(exc).__name__}: {exc}")
    if reason is EngineErrorReason.TIMEOUT:
        return ProbeOutcome(
            evaluate.TIMEOUT,
            error=_short(f"{doing} the probe exceeded its timeout of {timeout_ms} ms ({message})"),
        )
    return ProbeOutcome(evaluate.ERROR, error=_short(f"{doing} the probe failed ({reason.value}): {message}"))


def _elapsed_ms(began: float) -> float:
    return round((time.monotonic() - began) * 1000, 3)


def _short(text: str) -> str:
    text = " ".join(scrub_secrets(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
