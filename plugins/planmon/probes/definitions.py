"""Probe definitions: the DBA's own check queries, kept as YAML files and validated before they run.

A probe file holds ``probes:``, a list of probe mappings (format with every field: docs/probes.md).
Loading validates the whole file and reports every problem with the file, the probe's position and
name, and the field (``probes.yaml: probes[1] (orders_backlog).warning: ...``), so a DBA can fix it
without guessing. Validation happens when a task or command reads the files, never at DAG import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from planmon.errors import ConfigError
from planmon.model.probes import ProbeDefinition

PROBE_FILE_SUFFIXES = (".yaml", ".yml")


def validate_probe(raw: Any, *, source: str, position: str = "probe") -> ProbeDefinition:
    """One probe mapping validated; ConfigError names the source, the probe and every bad field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {position}: a probe is a mapping of fields (name, sql, ...)")
    try:
        return ProbeDefinition.model_validate(dict(raw))
    except ValidationError as exc:
        name = raw.get("name")
        label = f"{position} ({name})" if isinstance(name, str) else position
        raise ConfigError(
            f"{source}: " + "; ".join(_problems(exc, label)),
            hint="docs/probes.md lists every field and what it accepts",
        ) from exc


def _problems(exc: ValidationError, label: str) -> list[str]:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against docs/probes.md)"
        given = error.get("input")
        given_text = f" (got {given!r})" if isinstance(given, str | int | float) and location else ""
        problems.append(f"{label}.{location}: {message}{given_text}" if location else f"{label}: {message}")
    return problems


def load_probe_file(path: Path) -> list[ProbeDefinition]:
    """Every probe of one YAML file (``probes:`` list); ConfigError names the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read probe file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(raw, Mapping) or set(raw) != {"probes"} or not isinstance(raw["probes"], list):
        raise ConfigError(
            f"{path}: a probe file is a mapping with one key, probes:, holding a list of probes",
            hint="see docs/probes.md for an example",
        )
    probes: list[ProbeDefinition] = []
    problems: list[str] = []
    for index, item in enumerate(raw["probes"]):
        try:
            probes.append(validate_probe(item, source=str(path), position=f"probes[{index}]"))
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("; ".join(problems), hint="docs/probes.md lists every field and what it accepts")
    _check_unique(probes, [str(path)] * len(probes))
    return probes


def probe_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in PROBE_FILE_SUFFIXES and p.is_file())


def load_probe_directory(directory: Path) -> list[tuple[ProbeDefinition, str]]:
    """(probe, source file) for every probe file in ``directory``; every bad file is reported at once."""
    loaded: list[tuple[ProbeDefinition, str]] = []
    problems: list[str] = []
    for path in probe_files(directory):
        try:
            loaded += [(probe, str(path)) for probe in load_probe_file(path)]
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError(
            "invalid probe file(s): " + " | ".join(problems),
            hint="docs/probes.md lists every field and what it accepts",
        )
    _check_unique([probe for probe, _ in loaded], [source for _, source in loaded])
    return loaded


def _check_unique(probes: Sequence[ProbeDefinition], sources: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for probe, source in zip(probes, sources, strict=True):
        if probe.name in seen:
            raise ConfigError(
                f"{source}: probe name {probe.name!r} is already defined in {seen[probe.name]}",
                hint="probe names are unique across the probe directory",
            )
        seen[probe.name] = source
