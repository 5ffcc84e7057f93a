"""``planmon remediate``: proposals, the ledger, the rails of a target, and apply/verify of an
approved proposal outside Airflow. Approval itself only happens in Airflow (a person answers the
planmon_remediate run's approval task): ``apply`` refuses anything without a recorded approval."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from planmon.commands._common import open_repository, print_json, print_table
from planmon.errors import ConfigError
from planmon.model import REMEDIATION_MODES, Action, Remediation, RemediationState

if TYPE_CHECKING:  # the handlers import it: registering the parsers must stay light
    from planmon.remediation.workflow import RemediationWorkflow

EXIT_REFUSED = 3
HOW_TO_APPROVE = (
    'approve it in Airflow: trigger planmon_remediate with conf {{"regression_id": {regression}}} (or open '
    "the run that proposed it) and answer its approval task on the Required Actions page; then run "
    "`planmon remediate apply {id}` again, or let the DAG apply and verify it"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    remediate = subparsers.add_parser("remediate", help="approval-gated fixes of regressions")
    commands = remediate.add_subparsers(dest="remediate_command", metavar="SUBCOMMAND", required=True)

    propose = commands.add_parser("propose", help="build (or show the open) proposal for a regression")
    propose.add_argument("regression_id", type=int, metavar="REGRESSION_ID")
    propose.add_argument("--json", action="store_true", help="print the proposal as JSON")
    propose.set_defaults(handler=_propose)

    listing = commands.add_parser("list", help="remediations and their outcomes (the ledger)")
    listing.add_argument("--target", help="only this target")
    listing.add_argument("--json", action="store_true", help='print {"remediations": [...]}')
    listing.set_defaults(handler=_list)

    apply = commands.add_parser("apply", help="run an approved proposal through the remediation connection")
    apply.add_argument("proposal_id", type=int, metavar="PROPOSAL_ID")
    apply.set_defaults(handler=_apply)

    verify = commands.add_parser(
        "verify", help="collect the target and keep or roll back an applied remediation"
    )
    verify.add_argument("proposal_id", type=int, metavar="PROPOSAL_ID")
    verify.set_defaults(handler=_verify)

    policy = commands.add_parser("policy", help="show or set a target's remediation mode and rails")
    policy.add_argument("target", metavar="TARGET")
    policy.add_argument("--mode", choices=REMEDIATION_MODES)
    policy.add_argument(
        "--remediation-conn-id", help="Airflow connection id used to act (not the collection one)"
    )
    policy.add_argument(
        "--allow",
        action="append",
        choices=[a.value for a in Action],
        metavar="ACTION",
        help="allow-listed action (repeatable); in mode auto these run without approval",
    )
    policy.add_argument(
        "--window",
        action="append",
        metavar="DAYS@HH:MM-HH:MM",
        help="maintenance window in UTC, e.g. sat,sun@01:00-05:00 (repeatable)",
    )
    policy.add_argument("--approver", action="append", metavar="USER", help="Airflow user who may approve")
    policy.add_argument("--max-per-hour", type=int, help="lower the hourly action limit for this target")
    policy.add_argument(
        "--approval-channel",
        action="append",
        metavar="CHANNEL",
        help="alert channel (routing file name) told of this target's approvals (default: as alerts)",
    )
    policy.add_argument("--json", action="store_true")
    policy.set_defaults(handler=_policy)


@contextmanager
def _workflow() -> Iterator[RemediationWorkflow]:
    """The same workflow the DAG runs (every rail, live state), acting as ``cli``, through the targets'
    Airflow connections (resolved from AIRFLOW_CONN_* variables, a secrets backend or Airflow's DB)."""
    from planmon.airflow.connections import AirflowConnections
    from planmon.config import load_settings
    from planmon.remediation.workflow import RemediationWorkflow

    with open_repository() as repository:
        yield RemediationWorkflow(repository, load_settings(), AirflowConnections(), actor="cli")


def _propose(args: argparse.Namespace) -> int:
    with _workflow() as steps:
        proposed = steps.propose(args.regression_id)
    if args.json:
        print_json(proposed.as_dict())
        return 0
    record = proposed.remediation
    print(
        f"proposal {proposed.id} ({'new' if proposed.created else 'already open'}): {record.action.value}, "
        f"state {record.state.value}"
    )
    print(f"-- SQL\n{record.sql_text}\n-- rollback\n{record.rollback_sql or '(none)'}")
    print(f"expected effect: {record.expected_effect}")
    for warning in proposed.ledger_warnings:
        print(f"ledger: {warning}")
    print("needs a person's approval" if proposed.needs_approval else "mode auto: runs without approval")
    return 0


def _list(args: argparse.Namespace) -> int:
    from planmon.store.remediations import RemediationStore

    with open_repository() as repository:
        target_id = repository.get_target(args.target).id if args.target else None
        rows = RemediationStore(repository).remediations(target_id=target_id)
    if args.json:
        print_json({"remediations": [_public(row) for row in rows]})
        return 0
    print_table(
        ["id", "target", "regression", "action", "state", "approved_by", "applied_at", "outcome / reason"],
        [
            [
                r["id"],
                r["target"],
                r["regression_id"],
                r["action"],
                r["state"],
                r["approved_by"],
                r["applied_at"],
                (r["outcome_reason"] or "")[:80],
            ]
            for r in rows
        ],
    )
    return 0


def _public(row: dict[str, Any]) -> dict[str, Any]:
    evidence = dict(row.get("evidence") or {})
    return {
        "id": row["id"],
        "target": row["target"],
        "regression_id": row["regression_id"],
        "query_id": row["query_id"],
        "action": row["action"],
        "state": row["state"],
        "sql": row["sql_text"],
        "rollback_sql": row["rollback_sql"],
        "expected_effect": row["expected_effect"],
        "approved_by": row["approved_by"],
        "approved_at": row["approved_at"],
        "applied_at": row["applied_at"],
        "outcome": row["outcome"],
        "outcome_reason": row["outcome_reason"],
        "verification": row["verification"],
        "ledger": evidence.get("ledger") or [],
        "created_at": row["created_at"],
    }


def _apply(args: argparse.Namespace) -> int:
    with _workflow() as steps:
        record = steps.remediation(args.proposal_id)
        if record.state is RemediationState.PROPOSED or (
            record.state is not RemediationState.APPROVED and not record.approved_by
        ):
            hint = HOW_TO_APPROVE.format(regression=record.regression_id, id=record.id)
            print(
                f"planmon: refused: proposal {record.id} is {record.state.value} and has no recorded "
                f"approval; {hint}",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        applied = steps.apply(args.proposal_id)
        settings = steps.settings
    print(
        f"proposal {applied.id} is {applied.state.value} (approved by {applied.approved_by}); "
        f"run `planmon remediate verify {applied.id}` after "
        f"{settings.remediation_verify_executions} executions "
        f"or {settings.remediation_verify_minutes:g} minutes"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from planmon.remediation.verify import Outcome

    with _workflow() as steps:
        looked = steps.look(args.proposal_id)
        if isinstance(looked, Remediation):  # its action was found not in effect: failed
            print(f"proposal {looked.id} is {looked.state.value}: {looked.outcome_reason}")
            return 0
        print(looked.reason)
        if looked.outcome is Outcome.WAITING:
            return 0
        concluded = steps.conclude(args.proposal_id, looked)
    print(f"proposal {concluded.id} is {concluded.state.value}")
    return 0


def _policy(args: argparse.Namespace) -> int:
    from planmon.remediation.rails import RemediationPolicy
    from planmon.store.remediations import RemediationStore

    with open_repository() as repository:
        store = RemediationStore(repository)
        target = repository.get_target(args.target)
        policy = RemediationPolicy.from_dict(target.remediation_policy, target=target.name).as_dict()
        if args.allow is not None:
            policy["allowed_actions"] = args.allow
        if args.window is not None:
            policy["maintenance_windows"] = [_window(text) for text in args.window]
        if args.approver is not None:
            policy["assigned_users"] = args.approver
        if args.max_per_hour is not None:
            policy["max_actions_per_hour"] = args.max_per_hour
        if args.approval_channel is not None:
            policy["approval_channels"] = args.approval_channel
        RemediationPolicy.from_dict(policy, target=target.name)  # validate before storing
        changed = any(
            v is not None
            for v in (args.allow, args.window, args.approver, args.max_per_hour, args.approval_channel)
        )
        if changed:
            store.set_policy(target.name, policy, actor="cli")
        if args.mode is not None or args.remediation_conn_id is not None:
            store.set_mode(
                target.name,
                args.mode or target.remediation_mode,
                actor="cli",
                remediation_conn_id=args.remediation_conn_id,
            )
        target = repository.get_target(args.target)
    shown = {
        "target": target.name,
        "mode": target.remediation_mode,
        "remediation_conn_id": target.remediation_conn_id,
        "policy": policy,
    }
    print(json.dumps(shown, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in shown.items()))
    return 0


def _window(text: str) -> dict[str, Any]:
    days, _, span = text.rpartition("@")
    start, _, end = span.partition("-")
    if not start or not end:
        raise ConfigError(
            f"maintenance window {text!r} is not DAYS@HH:MM-HH:MM", hint="e.g. sat,sun@01:00-05:00"
        )
    window: dict[str, Any] = {"start": start, "end": end}
    if days:
        window["days"] = days.split(",")
    return window
