"""The front door for plan documents: decode once, recognise the engine, hand over to its parser.

Callers (the CLI, the collectors, tests) never pick a parser module themselves: ``parse_plan`` sniffs
the content (SSMS ``.sqlplan`` XML, PostgreSQL JSON or text EXPLAIN, possibly inside a psql or pgAdmin
frame, MySQL/MariaDB ``EXPLAIN FORMAT=JSON``) unless the engine is forced. Engine modules are
imported lazily so that reading a PostgreSQL plan never loads lxml, and an engine whose parser is
not installed fails with a clear error instead of an ImportError.
"""

from __future__ import annotations

import codecs
import importlib
import re
from pathlib import Path
from typing import Protocol, cast

from planmon.errors import ConfigError, PlanParseError
from planmon.plans.hygiene import decode_plan_bytes, sniff_encoding
from planmon.plans.model import ENGINES, Engine, Plan

# Engine name -> module under planmon.plans that implements ``parse``.
PARSER_MODULES: dict[Engine, str] = {
    "sqlserver": "planmon.plans.showplan",
    "postgres": "planmon.plans.postgres",
    "mysql": "planmon.plans.mysql",
}

# Spellings people type for --engine; the canonical names are ENGINES.
_ENGINE_ALIASES: dict[str, Engine] = {
    "mssql": "sqlserver",
    "sql-server": "sqlserver",
    "postgresql": "postgres",
    "pg": "postgres",
    "mariadb": "mysql",
}

_SUPPORTED = (
    "SQL Server showplan XML, PostgreSQL EXPLAIN (JSON or text) and MySQL/MariaDB EXPLAIN FORMAT=JSON"
)
_HEAD_CHARS = 64 * 1024  # markers sit at the top of every real plan; look further only if not found
_PG_TEXT_MARKERS = re.compile(r"\(cost=\d|\(actual time=\d|\(actual rows=\d|^[\s│|\"]*->\s|QUERY PLAN", re.M)


class _EngineParser(Protocol):
    def __call__(self, data: bytes | str, *, source: str | None = None) -> Plan: ...


def engine_name(name: str) -> Engine:
    """The canonical engine name for ``name`` (case-insensitive, common aliases accepted).

    Raises ConfigError naming the valid engines: a wrong ``--engine`` is a setting to fix, not a bad plan.
    """
    key = name.strip().lower()
    for engine in ENGINES:
        if key == engine:
            return engine
    if key in _ENGINE_ALIASES:
        return _ENGINE_ALIASES[key]
    raise ConfigError(
        f"unknown plan engine {name!r}",
        hint=f"use one of: {', '.join(ENGINES)}",
    )


def detect_engine(text: str, *, source: str | None = None) -> Engine:
    """Which engine produced the plan ``text``, judged from its content alone.

    XML with a ``ShowPlanXML`` root is SQL Server; JSON with ``"Node Type"``/``"Plan"`` keys (bare or
    inside a psql/pgAdmin frame) is PostgreSQL; JSON with ``"query_block"`` is MySQL/MariaDB; text with
    ``(cost=``, ``(actual time=``, ``->`` arrows or a ``QUERY PLAN`` header is PostgreSQL text EXPLAIN.
    """
    head = text[:_HEAD_CHARS]
    found = _detect_in(head)
    if found is None and len(text) > len(head):
        found = _detect_in(text)
    if found is not None:
        return found
    if head.lstrip().startswith("<"):
        raise PlanParseError(
            "the document is XML but not a SQL Server showplan (no ShowPlanXML element)",
            source=source,
            hint="save the plan from SSMS as .sqlplan or read query_plan from the DMVs / Query Store",
        )
    raise PlanParseError(
        "cannot tell which engine produced this plan",
        source=source,
        hint=f"supported: {_SUPPORTED}; pass --engine {{{','.join(ENGINES)}}} to force one",
    )


def _detect_in(text: str) -> Engine | None:
    if "ShowPlanXML" in text and "<" in text:
        return "sqlserver"
    # "Node Type" is PostgreSQL-only; "query_block" next, so a MySQL table named Plan stays MySQL.
    if '"Node Type"' in text:
        return "postgres"
    if '"query_block"' in text:
        return "mysql"
    if '"Plan"' in text:
        return "postgres"
    if _PG_TEXT_MARKERS.search(text):
        return "postgres"
    return None


def parse_plan(
    data: bytes | str,
    *,
    engine: Engine | str | None = None,
    source: str | None = None,
) -> Plan:
    """Parse a plan document of any supported engine into the engine-neutral model.

    The bytes are decoded once (BOM, UTF-16 and wrong encoding declarations handled by ``hygiene``);
    ``engine`` forces a parser, otherwise the content decides. Every failure is a PlanParseError
    (or ConfigError for an unknown ``engine`` name).
    """
    if isinstance(data, bytes) and engine is None and _starts_like_showplan(data):
        # libxml2 reads the original bytes (encoding forced from the BOM): no decode and re-encode
        return _parser_for("sqlserver", source)(data, source=source)
    text = decode_plan_bytes(data, source=source)
    chosen = engine_name(engine) if engine is not None else detect_engine(text, source=source)
    return _parser_for(chosen, source)(text, source=source)


_SHOWPLAN_HEAD_BYTES = 4096  # the ShowPlanXML root element opens within the first lines of a real plan


def _starts_like_showplan(data: bytes) -> bool:
    """True when the first bytes already say SQL Server showplan (``detect_engine`` checks that first).

    Only a prefix of what ``detect_engine`` reads is decoded, so a yes here is its answer too; a no (or
    bytes that are not text) takes the full decode, which detects or reports the error as before.
    """
    encoding, bom_length = sniff_encoding(data)
    decoder = codecs.getincrementaldecoder(encoding)()  # a character cut at the end is left out
    try:
        head = decoder.decode(data[bom_length : bom_length + _SHOWPLAN_HEAD_BYTES])
    except UnicodeDecodeError:
        return False
    return _detect_in(head) == "sqlserver"


def parse_plan_file(path: str | Path, *, engine: Engine | str | None = None) -> Plan:
    """Read and parse one plan file; the file name becomes the plan's ``source``."""
    file_path = Path(path)
    try:
        data = file_path.read_bytes()
    except OSError as exc:
        raise PlanParseError(
            f"cannot read the plan file ({exc.strerror or exc})",
            source=str(file_path),
            hint="check the path and that the file is readable",
        ) from exc
    return parse_plan(data, engine=engine, source=str(file_path))


def _parser_for(engine: Engine, source: str | None) -> _EngineParser:
    module_name = PARSER_MODULES[engine]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise PlanParseError(
            f"the {engine} plan parser ({module_name}) is not available in this installation",
            source=source,
            hint="install a planmon build that includes it",
        ) from exc
    return cast(_EngineParser, module.parse)
