"""``planmon targets``: register the monitored databases (credentials stay in Airflow connections)."""

from __future__ import annotations

import argparse

from planmon.commands._common import open_repository, print_json, print_table
from planmon.errors import ConfigError
from planmon.model import ENGINE_NAMES, REMEDIATION_MODES, TargetSpec


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "targets",
        help="register, list and switch monitored databases",
        description="Targets are monitored databases reached through Airflow connection ids.",
    )
    actions = parser.add_subparsers(dest="targets_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="register a target")
    add.add_argument("name", help="a unique name, e.g. orders-prod")
    add.add_argument("--engine", required=True, choices=ENGINE_NAMES)
    add.add_argument("--conn-id", required=True, help="Airflow connection id (must resolve in Airflow)")
    add.add_argument("--env", dest="environment", help="environment, e.g. prod (used to route alerts)")
    add.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    add.add_argument("--database", action="append", default=[], metavar="DB", help="repeatable; default all")
    add.add_argument("--remediation-mode", default="propose", choices=REMEDIATION_MODES)
    add.add_argument("--remediation-conn-id", help="separate Airflow connection id for remediation")
    add.add_argument("--disabled", action="store_true", help="register without collecting yet")
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list targets")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=_list)

    for action, help_text, handler in (
        ("remove", "remove a target and its collected data (the audit log keeps a record)", _remove),
        ("enable", "collect from a target again", _enable),
        ("disable", "stop collecting from a target, keeping its data", _disable),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("name")
        sub.set_defaults(handler=handler)


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"tag {pair!r} is not KEY=VALUE", hint="e.g. --tag team=payments")
        tags[key.strip()] = value.strip()
    return tags


def _add(args: argparse.Namespace) -> int:
    from planmon.airflow.connections import get_connection

    spec = TargetSpec(
        name=args.name,
        engine=args.engine,
        conn_id=args.conn_id,
        environment=args.environment,
        tags=parse_tags(args.tag),
        databases=tuple(args.database),
        enabled=not args.disabled,
        remediation_mode=args.remediation_mode,
        remediation_conn_id=args.remediation_conn_id,
    ).validate()
    for conn_id in filter(None, (spec.conn_id, spec.remediation_conn_id)):
        get_connection(conn_id)  # raises ConfigError saying how to define it
    with open_repository() as repository:
        added = repository.add_target(spec)
    print(f"added target {added.name} ({added.engine}, connection {added.conn_id})")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_repository() as repository:
        targets = repository.list_targets()
    if args.json:
        print_json([t.as_dict() for t in targets])
        return 0
    if not targets:
        print("no targets yet: add one with `planmon targets add NAME --engine E --conn-id ID`")
        return 0
    print_table(
        ["name", "engine", "conn_id", "env", "enabled", "mode", "tags", "databases"],
        [
            [
                t.name,
                t.engine,
                t.conn_id,
                t.environment,
                "yes" if t.enabled else "no",
                t.remediation_mode,
                ",".join(f"{k}={v}" for k, v in sorted(t.tags.items())),
                ",".join(t.databases) or "(all)",
            ]
            for t in targets
        ],
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    with open_repository() as repository:
        repository.remove_target(args.name)
    print(f"removed target {args.name}")
    return 0


def _enable(args: argparse.Namespace) -> int:
    with open_repository() as repository:
        repository.set_target_enabled(args.name, True)
    print(f"enabled target {args.name}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    with open_repository() as repository:
        repository.set_target_enabled(args.name, False)
    print(f"disabled target {args.name}")
    return 0
