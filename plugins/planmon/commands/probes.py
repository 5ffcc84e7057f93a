"""``planmon probes``: list, add, remove and run probes (user-defined check queries, docs/probes.md).

Probe files in the probe directory (``PLANMON_PROBES_DIR``, default ``include/probes``) are the
source of truth; every command validates them and syncs them into the repository, as
``planmon_probes`` does at the start of each run.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planmon.commands._common import open_repository, print_json, print_table
from planmon.errors import ConfigError
from planmon.model import ENGINE_NAMES, Target

if TYPE_CHECKING:  # the handlers import these: registering the parsers must stay light
    from planmon.config import Settings
    from planmon.model.probes import ProbeDefinition
    from planmon.store import Repository
    from planmon.store.probes import ProbeStore, StoredProbe


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "probes",
        help="list, add, remove and run probes (your own check queries)",
        description="Probes are read-only check queries with thresholds, kept as YAML files.",
    )
    actions = parser.add_subparsers(dest="probes_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="validate the probe files and list every probe")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=_list)

    add = actions.add_parser("add", help="validate a probe file and copy it into the probe directory")
    add.add_argument("file", type=Path, help="a YAML file with a probes: list")
    add.add_argument("--replace", action="store_true", help="overwrite a probe file of the same name")
    add.set_defaults(handler=_add)

    remove = actions.add_parser("remove", help="remove a probe from its file (its results are kept)")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    run = actions.add_parser(
        "run",
        help="run a probe now and print the outcome",
        description="Run a probe now on the targets it selects (or those named) and print the outcome. "
        "A target whose login can do more than read (superuser, SUPER, sysadmin, ...) is not run: "
        "its outcome is refused with the reason (docs/probes.md, 'The probe login'). Exit 3 when any "
        "outcome is not ok.",
    )
    run.add_argument("name")
    run.add_argument("--target", action="append", default=[], help="repeatable; default: every target")
    run.add_argument("--record", action="store_true", help="store the results and send their alerts")
    run.add_argument("--json", action="store_true", help="print a JSON array")
    run.set_defaults(handler=_run)


def _synced(repository: Repository, settings: Settings) -> ProbeStore:
    from planmon.probes.service import sync_definitions
    from planmon.store.probes import ProbeStore

    store = ProbeStore(repository)
    sync_definitions(store, settings)
    return store


def _list(args: argparse.Namespace) -> int:
    from planmon.config import load_settings

    settings = load_settings()
    with open_repository() as repository:
        store = _synced(repository, settings)
        probes = store.probes()
        last = {probe.id: store.results(probe_id=probe.id, limit=1) for probe in probes}
    if args.json:
        print_json([_probe_json(probe, last[probe.id]) for probe in probes])
        return 0
    if not probes:
        print(f"no probes: add a file to {settings.resolved_probes_dir} or use `planmon probes add FILE`")
        return 0
    print_table(
        ["name", "kind", "engines", "result", "rule", "schedule", "enabled", "source", "last"],
        [
            [
                p.name,
                p.definition.kind,
                ",".join(p.definition.sql),
                p.definition.result,
                _rule(p.definition),
                p.definition.schedule,
                "yes" if p.enabled else "no",
                Path(p.source_file).name if p.source_file else "",
                f"{last[p.id][0].status} at {last[p.id][0].run_at:%Y-%m-%d %H:%M}" if last[p.id] else "",
            ]
            for p in probes
        ],
    )
    return 0


def _rule(definition: ProbeDefinition) -> str:
    parts = [
        f"{label} {definition.operator} {value:g}"
        for label, value in (("warning", definition.warning), ("critical", definition.critical))
        if value is not None
    ]
    return "; ".join(parts)


def _probe_json(probe: StoredProbe, last: list[Any]) -> dict[str, Any]:
    return {
        "name": probe.name,
        "enabled": probe.enabled,
        "source_file": probe.source_file,
        "definition": probe.definition.as_stored(),
        "last_result": (
            {"status": last[0].status, "value": last[0].value, "run_at": last[0].run_at.isoformat()}
            if last
            else None
        ),
    }


def _add(args: argparse.Namespace) -> int:
    from planmon.config import load_settings
    from planmon.probes.definitions import PROBE_FILE_SUFFIXES, load_probe_file
    from planmon.probes.runner import guard
    from planmon.probes.service import BUILTIN_SOURCE, load_definitions

    settings = load_settings()
    source: Path = args.file
    if source.suffix not in PROBE_FILE_SUFFIXES:
        raise ConfigError(f"{source}: a probe file ends in .yaml or .yml")
    probes = load_probe_file(source)  # ConfigError names the file and the field
    refused = [
        f"{probe.name} ({engine}): {reason}"
        for probe in probes
        for engine in probe.sql
        if (reason := guard(probe, engine, settings.probe_extra_functions)) is not None
    ]
    if refused:
        raise ConfigError(f"{source}: " + "; ".join(refused), hint="probes may only read")
    directory = settings.resolved_probes_dir
    destination = directory / source.name
    if destination.exists() and not args.replace and destination.resolve() != source.resolve():
        raise ConfigError(f"{destination} exists", hint="pass --replace to overwrite it, or rename the file")
    existing = {probe.name: src for probe, src in load_definitions(settings) if Path(src) != destination}
    clashes = [f"{p.name} (in {existing[p.name]})" for p in probes if p.name in existing]
    if clashes and not all(existing[p.name] == BUILTIN_SOURCE for p in probes if p.name in existing):
        raise ConfigError(f"{source}: probe name(s) already defined: {', '.join(clashes)}")
    directory.mkdir(parents=True, exist_ok=True)
    if destination.resolve() != source.resolve():
        shutil.copyfile(source, destination)
    with open_repository() as repository:
        _synced(repository, settings)
    print(f"added {len(probes)} probe(s) from {destination}: {', '.join(p.name for p in probes)}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    import yaml

    from planmon.config import load_settings
    from planmon.probes.definitions import load_probe_file
    from planmon.probes.service import BUILTIN_SOURCE, load_definitions

    settings = load_settings()
    sources = {probe.name: source for probe, source in load_definitions(settings)}
    source = sources.get(args.name)
    if source is None:
        raise ConfigError(f"no probe named {args.name!r} in {settings.resolved_probes_dir} or the built-ins")
    if source == BUILTIN_SOURCE:
        raise ConfigError(
            f"{args.name} is a built-in probe",
            hint="override it in a probe file with enabled: false, or set PLANMON_PROBES_BUILTIN=false",
        )
    path = Path(source)
    remaining = [p for p in load_probe_file(path) if p.name != args.name]
    if remaining:
        document = {"probes": [_as_yaml(p) for p in remaining]}
        path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
        print(f"removed {args.name} from {path} (the file was rewritten: its comments are gone)")
    else:
        path.unlink()
        print(f"removed {args.name} and its file {path}")
    with open_repository() as repository:
        _synced(repository, settings)  # the stored probe is disabled; its results and alerts stay
    return 0


def _as_yaml(probe: ProbeDefinition) -> dict[str, Any]:
    """A probe as it would be written by hand: defaults left out, one SQL text when all engines share it."""
    fields = probe.model_dump(mode="json", exclude_defaults=True)
    texts = set(probe.sql.values())
    if len(texts) == 1 and len(probe.sql) == len(ENGINE_NAMES):
        fields["sql"] = texts.pop()
    return {"name": fields.pop("name"), **fields}


def _run(args: argparse.Namespace) -> int:
    from planmon.config import load_settings

    settings = load_settings()
    with open_repository() as repository:
        store = _synced(repository, settings)
        stored = store.get(args.name)
        targets = _targets(repository, stored, args.target)
    summaries = [_run_one(stored, target, settings, record=args.record) for target in targets]
    if args.json:
        print_json(summaries)
    else:
        print_table(
            ["target", "status", "value", "ms", "plan", "error"],
            [
                [
                    s["target"],
                    s["status"],
                    s["value"],
                    None if s["duration_ms"] is None else f"{s['duration_ms']:.0f}",
                    (s["plan_shape_hash"] or "")[:12],
                    s["error"] or s["plan_error"],
                ]
                for s in summaries
            ],
        )
        for s in summaries:
            for row in s["breaching_rows"]:
                print(f"  {s['target']}: {row}")
    return 0 if all(s["status"] == "ok" for s in summaries) else 3


def _targets(repository: Repository, stored: StoredProbe, names: list[str]) -> list[Target]:
    if names:
        targets = [repository.get_target(name) for name in names]
        unsupported = [t.name for t in targets if stored.definition.sql_for(t.engine) is None]
        if unsupported:
            raise ConfigError(f"probe {stored.name} has no SQL for the engine of {', '.join(unsupported)}")
        return targets
    targets = [t for t in repository.list_targets(enabled_only=True) if stored.definition.applies_to(t)]
    if not targets:
        raise ConfigError(f"probe {stored.name} selects no enabled target", hint="pass --target NAME")
    return targets


def _run_one(stored: StoredProbe, target: Target, settings: Settings, *, record: bool) -> dict[str, Any]:
    from planmon.airflow.alert_tasks import open_dispatcher
    from planmon.airflow.connections import connection_factory
    from planmon.probes.service import run_and_record, utc_now_second
    from planmon.store.probes import ProbeStore

    def connect_for(t: Target) -> Any:
        return connection_factory(t.engine, t.conn_id)

    if record:
        with open_dispatcher(None, None) as dispatcher:
            store = ProbeStore(dispatcher.store.repository)
            return run_and_record(
                stored,
                target,
                utc_now_second(),
                connect_for=connect_for,
                settings=settings,
                store=store,
                dispatcher=dispatcher,
            )
    from planmon.probes.runner import run_probe

    outcome = run_probe(
        stored.definition,
        target,
        connect_for(target),
        default_timeout_seconds=settings.probe_timeout_seconds,
        max_rows=settings.probe_max_rows,
        allow_privileged=target.name in settings.probes_allow_privileged,
        allowed_functions=settings.probe_extra_functions,
    )
    return {"probe": stored.name, "target": target.name, **outcome.as_dict()}
