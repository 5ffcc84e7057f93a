"""``planmon remediate``: proposals, the ledger, the rails of a target, and apply/verify of an
approved proposal outside Airflow. Approval itself only happens in Airflow (a person answers the
planmon_remediate run's approval task): ``apply`` refuses anything without a recorded approval."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from planmon.commands._common import open_repository, print_json, print_table
from planmon.config import load_settings
from planmon.errors import ConfigError, RefusalReason, RemediationRefused
from planmon.model import REMEDIATION_MODES
from planmon.remediation import service
from planmon.remediation.model import Action, State
from planmon.remediation.rails import RemediationPolicy
from planmon.store.remediations import RemediationStore

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
    policy.add_argument("--json", action="store_true")
    policy.set_defaults(handler=_policy)


def _propose(args: argparse.Namespace) -> int:
    with open_repository() as repository:
        context = RemediationStore(repository).regression_context(args.regression_id)
        proposed = service.propose(
            repository, args.regression_id, inspector=_inspector(context.target), actor="cli"
        )
    if args.json:
        print_json(proposed.as_dict())
        return 0
    row = proposed.row
    print(
        f"proposal {proposed.id} ({'new' if proposed.created else 'already open'}): {row['action']}, "
        f"state {row['state']}"
    )
    print(f"-- SQL\n{row['sql_text']}\n-- rollback\n{row['rollback_sql'] or '(none)'}")
    print(f"expected effect: {row['expected_effect']}")
    for warning in proposed.ledger_warnings:
        print(f"ledger: {warning}")
    print("needs a person's approval" if proposed.needs_approval else "mode auto: runs without approval")
    return 0


def _inspector(target: Any) -> Any:
    """A live look at the target's indexes when its collection connection resolves, else None."""
    from planmon.airflow.connections import connection_exists

    if not connection_exists(target.conn_id):
        return None
    from planmon.airflow.remediate_tasks import index_inspector

    return index_inspector(target, load_settings())


def _list(args: argparse.Namespace) -> int:
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
    from planmon.airflow.connections import connection_factory

    settings = load_settings()
    with open_repository() as repository:
        store = RemediationStore(repository)
        row = store.get(args.proposal_id)
        if row["state"] == State.PROPOSED.value or (
            row["state"] != State.APPROVED.value and not row["approved_by"]
        ):
            hint = HOW_TO_APPROVE.format(regression=row["regression_id"], id=row["id"])
            print(
                f"planmon: refused: proposal {row['id']} is {row['state']} and has no recorded approval; "
                f"{hint}",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        target = repository.get_target(store._target_name(int(row["target_id"])))
        if not target.remediation_conn_id:
            raise RemediationRefused(
                f"target {target.name!r} has no remediation connection id", reason=RefusalReason.NO_CONNECTION
            )
        connect = connection_factory(target.engine, target.remediation_conn_id)
        collect = connection_factory(target.engine, target.conn_id)
        row = service.apply(
            repository,
            args.proposal_id,
            settings=settings,
            connect=connect,
            actor="cli",
            after_apply=lambda: service.collect_until_now(repository, target, settings, collect),
        )
    print(
        f"proposal {row['id']} is {row['state']} (approved by {row['approved_by']}); "
        f"run `planmon remediate verify {row['id']}` after "
        f"{settings.remediation_verify_executions} executions "
        f"or {settings.remediation_verify_minutes:g} minutes"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from planmon.airflow.connections import connection_factory

    settings = load_settings()
    with open_repository() as repository:
        store = RemediationStore(repository)
        row = store.get(args.proposal_id)
        target = repository.get_target(store._target_name(int(row["target_id"])))
        moment = service.collect_until_now(
            repository, target, settings, connection_factory(target.engine, target.conn_id)
        )
        verdict = service.verify(repository, args.proposal_id, settings=settings, now=moment)
        print(verdict.reason)
        if verdict.outcome.value == "waiting":
            return 0
        connect = (
            connection_factory(target.engine, target.remediation_conn_id)
            if target.remediation_conn_id
            else None
        )
        row = service.conclude(repository, args.proposal_id, verdict, settings=settings, connect=connect)
    print(f"proposal {row['id']} is {row['state']}")
    return 0


def _policy(args: argparse.Namespace) -> int:
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
        RemediationPolicy.from_dict(policy, target=target.name)  # validate before storing
        changed = any(v is not None for v in (args.allow, args.window, args.approver, args.max_per_hour))
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
