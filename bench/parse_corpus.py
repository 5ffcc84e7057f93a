"""Benchmark: planmon's full inspect of the plan corpus against a bare parse of the same bytes.

planmon side, per file: ``parse_plan`` (decode, detect, parse into the model) then ``shape_hash`` and
``find_all`` for every statement, with the compiled showplan reader when it is built (the output says
which; ``--python-reader`` measures the pure-Python reader instead, see ADR 0004). Bare side:
``lxml.etree.fromstring`` for XML, ``json.loads`` for JSON, ``bytes.decode`` + ``splitlines`` for text
plans. Both run in this process on bytes already in memory, best of N runs each (the sides alternate,
so noise hits both), timed with ``time.perf_counter``. Goal: planmon at most 2x the bare parse.

    .venv/bin/python bench/parse_corpus.py [--corpus DIR] [--repeat N] [--python-reader]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from lxml import etree

from planmon.plans.fingerprint import predicate_shape, shape_hash
from planmon.plans.hygiene import decode_plan_bytes
from planmon.plans.parse import parse_plan
from planmon.plans.rules import find_all
from planmon.plans.showplan import COMPILED_READER, python_reader

GOAL_RATIO = 2.0
_NOT_PLANS = {"SOURCES.md", "README.md"}
_XML_SUFFIXES = {".sqlplan", ".xml"}
_BARE_XML_PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


def _default_corpus() -> Path:
    configured = os.environ.get("PLANMON_CORPUS")
    return (
        Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    )


def load_corpus(corpus: Path) -> list[tuple[Path, bytes]]:
    """Every plan file of the corpus (XSDs and SOURCES files left out), read into memory once."""
    files = sorted(
        path
        for path in corpus.rglob("*")
        if path.is_file() and path.name not in _NOT_PLANS and path.suffix != ".xsd"
    )
    return [(path, path.read_bytes()) for path in files]


def planmon_inspect(files: list[tuple[Path, bytes]]) -> int:
    """What ``planmon plan inspect`` computes; returns the statement count (so nothing is optimised away)."""
    predicate_shape.cache_clear()  # every timed run starts cold, as a fresh collector process would
    statements = 0
    for path, data in files:
        plan = parse_plan(data, source=path.name)
        for statement in plan.statements:
            shape_hash(statement)
            find_all(statement, plan.engine)
            statements += 1
    return statements


def bare_parse(files: list[tuple[Path, bytes]]) -> int:
    """The least any reader must do with these bytes; returns the number of documents read."""
    for _path, data in files:
        _bare_one(_path, data)
    return len(files)


def _bare_one(path: Path, data: bytes) -> None:
    if path.suffix in _XML_SUFFIXES:
        try:
            etree.fromstring(data, _BARE_XML_PARSER)
        except etree.XMLSyntaxError:
            # Declared utf-16 but stored as UTF-8 (encoding-mismatch/): lxml refuses the raw bytes, so
            # the bare reader gets the decoded text without its declaration, as any working reader must.
            text = decode_plan_bytes(data)
            body = text[text.index("?>") + 2 :] if text.lstrip().startswith("<?xml") else text
            etree.fromstring(body.encode("utf-8"), _BARE_XML_PARSER)
    elif path.suffix == ".json":
        json.loads(data)
    else:
        data.decode("utf-8").splitlines()


def best_of_interleaved(repeat: int, files: list[tuple[Path, bytes]]) -> tuple[float, float]:
    """Best time of each side, the two sides alternating so machine noise hits both alike."""
    best = {planmon_inspect: float("inf"), bare_parse: float("inf")}
    for _ in range(repeat):
        for run in (planmon_inspect, bare_parse):
            started = time.perf_counter()
            run(files)
            best[run] = min(best[run], time.perf_counter() - started)
    return best[planmon_inspect], best[bare_parse]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=_default_corpus(), help="plan corpus directory")
    parser.add_argument("--repeat", type=int, default=9, help="runs per side; the best one counts")
    parser.add_argument(
        "--python-reader", action="store_true", help="read SQL Server plans with the pure-Python reader"
    )
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"corpus not found: {args.corpus} (pass --corpus or set PLANMON_CORPUS)", file=sys.stderr)
        return 2
    files = load_corpus(args.corpus)
    megabytes = sum(len(data) for _path, data in files) / 1e6
    reader = "python" if args.python_reader or not COMPILED_READER else "compiled"
    with python_reader() if reader == "python" else contextlib.nullcontext():
        statements = planmon_inspect(files)  # warm-up: imports, lazy parser modules, regex compilation
        bare_parse(files)
        planmon_seconds, bare_seconds = best_of_interleaved(args.repeat, files)
    ratio = planmon_seconds / bare_seconds
    print(f"corpus: {args.corpus} ({len(files)} files, {statements} statements, {megabytes:.2f} MB)")
    print(f"showplan reader: {reader}" + ("" if COMPILED_READER else " (the compiled reader is not built)"))
    print(f"best of {args.repeat}")
    print(f"planmon inspect: {planmon_seconds:.3f} s  {megabytes / planmon_seconds:.1f} MB/s")
    print(f"bare parse:      {bare_seconds:.3f} s  {megabytes / bare_seconds:.1f} MB/s")
    verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
    print(f"ratio planmon/bare: {ratio:.2f}x (goal <= {GOAL_RATIO:.0f}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
