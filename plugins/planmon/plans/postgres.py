"""Parse PostgreSQL ``EXPLAIN`` output (JSON or text) into the engine-neutral plan model.

Accepted input: ``EXPLAIN (FORMAT JSON)`` with or without ANALYZE / BUFFERS / SETTINGS / WAL / VERBOSE
(a list of statements, a single statement object, or several JSON documents one after the other), and
the text format as people paste it: bare, inside a psql frame (``QUERY PLAN`` header, dashes, ``(N rows)``
footer, ASCII or Unicode borders, ``+`` / ``↵`` continuation marks), DBeaver frames, pgAdmin quoted lines
and output re-wrapped at a fixed width. JSON inside any of those frames is recognised too.

The text parser produces the same dictionaries ``EXPLAIN (FORMAT JSON)`` would (same keys, e.g.
``"Node Type": "Hash Join", "Join Type": "Left"`` for ``Hash Left Join``), so one converter builds the
model from both formats and the two give the same tree.

Mapping decisions (read by fingerprint, diff and rules):

- ``physical_op`` is the node type without the ``Parallel`` prefix and without the join type
  (``Hash Join``, ``Nested Loop``, ``Index Only Scan``); aggregates and set operations carry their
  strategy as psql prints it (``HashAggregate``, ``GroupAggregate``, ``MixedAggregate``, ``HashSetOp``).
- ``logical_op`` is the ``Join Type`` (``Inner``, ``Left``, ``Semi``, ``Anti``, ...) for joins, the
  ``Operation`` (``Insert``/``Update``/``Delete``/``Merge``) for ModifyTable, ``Aggregate`` /
  ``Partial Aggregate`` / ``Finalize Aggregate`` for aggregates, the ``Command`` for SetOp, else None.
- ``parallel`` is true for ``Parallel Aware`` nodes and for every node below a Gather / Gather Merge.
- PostgreSQL reports ``Actual Rows`` and ``Actual Total Time`` *per loop* (averaged over loops, and over
  worker processes for parallel nodes). The model wants totals, so ``actual_rows = Actual Rows * Actual
  Loops``, ``actual_executions = Actual Loops`` and ``actual_elapsed_ms = Actual Total Time * Actual
  Loops``. For parallel nodes that last figure is time summed over processes, not wall-clock time.
  Never-executed nodes get zero rows, executions and time.
- ``actual_logical_reads`` is shared + local ``hit`` + ``read`` blocks. PostgreSQL counts buffers
  *including* the node's children (SQL Server counts them per operator).
- A Bitmap Index Scan names only its index; its table is taken from the Bitmap Heap Scan above it.
- Statement ``dop`` is the largest ``Workers Planned`` plus one for the leader process (which
  executes the parallel part too unless ``parallel_leader_participation`` is off in the reported
  settings); a plan without Gather has ``dop`` 1.
- Predicates, output lists and sort/group keys go through :func:`strip_literals`; every other node
  key is kept in ``properties`` under its JSON name (``"Sort Method"``, ``"Hash Batches"``,
  ``"Shared Hit Blocks"``, ``"Rows Removed by Filter"`` ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from planmon.errors import PlanParseError
from planmon.plans.fingerprint import SCHEMA_OPTIONAL
from planmon.plans.hygiene import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_PLAN_BYTES,
    decode_plan_bytes,
    json_values,
    structure_errors,
)
from planmon.plans.model import ObjectRef, Plan, PlanNode, PlanStatement, Predicate
from planmon.plans.normalize import strip_literals

__all__ = ["parse"]

RawNode = dict[str, Any]

# JSON key -> Predicate.kind, in the order predicates are listed on a node.
PREDICATE_KINDS: dict[str, str] = {
    "Index Cond": "index_cond",
    "Recheck Cond": "recheck",
    "TID Cond": "tid_cond",
    "Hash Cond": "hash_cond",
    "Merge Cond": "merge_cond",
    "Join Filter": "join",
    "One-Time Filter": "one_time_filter",
    "Filter": "filter",
    "Run Condition": "run_condition",
    "Conflict Filter": "conflict_filter",
}
# Keys whose values are expressions that may carry literals: kept in properties, literals stripped.
_EXPRESSION_KEYS = frozenset(
    {
        "Output",
        "Sort Key",
        "Group Key",
        "Presorted Key",
        "Cache Key",
        "Order By",
        "Hash Key",
        "Function Call",
        "Table Function Call",
        "Grouping Sets",
        "Repeatable Seed",
        "Sampling Parameters",
    }
)
# Node types EXPLAIN prints (src/backend/commands/explain.c), for text without costs or arrows.
NODE_TYPES = frozenset(
    {
        "Result",
        "ProjectSet",
        "ModifyTable",
        "Append",
        "Merge Append",
        "Recursive Union",
        "BitmapAnd",
        "BitmapOr",
        "Nested Loop",
        "Merge Join",
        "Hash Join",
        "Seq Scan",
        "Sample Scan",
        "Gather",
        "Gather Merge",
        "Index Scan",
        "Index Only Scan",
        "Bitmap Index Scan",
        "Bitmap Heap Scan",
        "Tid Scan",
        "Tid Range Scan",
        "Subquery Scan",
        "Function Scan",
        "Table Function Scan",
        "Values Scan",
        "CTE Scan",
        "Named Tuplestore Scan",
        "WorkTable Scan",
        "Foreign Scan",
        "Custom Scan",
        "Materialize",
        "Memoize",
        "Sort",
        "Incremental Sort",
        "Group",
        "Aggregate",
        "WindowAgg",
        "Unique",
        "SetOp",
        "LockRows",
        "Limit",
        "Hash",
    }
)
_AGGREGATE_OPS = {
    "Plain": "Aggregate",
    "Sorted": "GroupAggregate",
    "Hashed": "HashAggregate",
    "Mixed": "MixedAggregate",
}
_SETOP_OPS = {"Sorted": "SetOp", "Hashed": "HashSetOp"}
_PARTIAL_LOGICAL = {"Partial": "Partial Aggregate", "Finalize": "Finalize Aggregate"}
_GATHER_TYPES = frozenset({"Gather", "Gather Merge"})
_JSON_HINT = "export the plan again with EXPLAIN (FORMAT JSON) and copy the whole output"
_TEXT_HINT = "paste the complete EXPLAIN output; lines cut off or re-wrapped by a tool cannot be read"


def parse(
    data: bytes | str,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_PLAN_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Plan:
    """Parse PostgreSQL EXPLAIN output (JSON or text, framed or not) into a :class:`Plan`.

    Raises :class:`PlanParseError` (never another exception type) with a position and a hint when
    the input is malformed, truncated, too large or nested deeper than ``max_depth`` operators.
    """
    text = decode_plan_bytes(data, source=source, max_bytes=max_bytes)
    if not text.strip():
        raise PlanParseError("the plan is empty", source=source, hint=_TEXT_HINT)
    with structure_errors(source=source, hint=_JSON_HINT, max_depth=max_depth):
        documents, fmt = _documents(text, source, max_depth)
        statements = [
            _statement(index, document, fmt=fmt, source=source, max_depth=max_depth)
            for index, document in enumerate(documents)
        ]
    return Plan(engine="postgres", statements=statements, source=source or "<bytes>")


# --------------------------------------------------------------------------------------------------
# Document level: JSON or text


def _documents(text: str, source: str | None, max_depth: int) -> tuple[list[dict[str, Any]], str]:
    """The statement documents of the input (JSON-shaped dicts) and the format they came in."""
    if text.lstrip()[:1] in ("[", "{"):
        return _json_statements(text, source, None), "json"
    lines = _unframe(text)
    joined = "\n".join(line for _, line in lines)
    if joined.lstrip()[:1] in ("[", "{"):
        return _json_statements(joined, source, [number for number, _ in lines]), "json"
    return _TextParser(source, max_depth).parse(lines), "text"


def _json_statements(text: str, source: str | None, line_map: list[int] | None) -> list[dict[str, Any]]:
    """Decode one or more JSON documents and flatten them into statement objects."""

    def original_line(line: int) -> int:
        return line_map[line - 1] if line_map and line <= len(line_map) else line

    values = json_values(text, source=source, hint=_JSON_HINT, original_line=original_line)
    return _flatten_statements(values, source)


def _flatten_statements(values: list[Any], source: str | None) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        for element in items:
            # a QUERY PLAN column can hold [ {...} ] per row
            item = element[0] if isinstance(element, list) and len(element) == 1 else element
            if not isinstance(item, dict) or not isinstance(item.get("Plan"), dict):
                raise PlanParseError(
                    'a JSON plan statement has no "Plan" object',
                    source=source,
                    position=f"statement {len(statements) + 1}",
                    hint=_JSON_HINT,
                )
            statements.append(item)
    if not statements:
        raise PlanParseError("the JSON plan holds no statement", source=source, hint=_JSON_HINT)
    return statements


# --------------------------------------------------------------------------------------------------
# Frames around text: psql, Unicode, DBeaver, pgAdmin

_SEPARATOR = re.compile(r"^[\s\-+=─═│║┌┐└┘╔╗╚╝╠╣├┤╟╢╞╡┬┴┼╤╧╪╦╩╬|]*$")
_FRAME_SIDES = "|│║"
_ROW_COUNT = re.compile(r"^\s*\(\d+\s+[^\W\d]+\)\s*$")
_QUERY_PLAN_HEADER = re.compile(r"^\s*QUERY PLAN\s*$")

Lines = list[tuple[int, str]]


def _unframe(text: str) -> Lines:
    """Remove client framing and return ``(original line number, content)`` pairs."""
    raw = text.replace("\r\n", "\n").replace("\r", "\n")
    whole = raw.strip()
    if whole[:2] in ('"[', '"{') and whole.endswith('"'):  # one quoted CSV cell holding JSON
        return [(1, whole[1:-1].replace('""', '"'))]
    lines = list(enumerate(raw.split("\n"), start=1))
    lines = _unquote(lines)
    cleaned: Lines = []
    header_seen = False
    for number, line in lines:
        if not header_seen and _QUERY_PLAN_HEADER.match(_strip_sides(line)):
            header_seen = True
            continue
        if line.strip() and _SEPARATOR.match(line):
            continue
        if _ROW_COUNT.match(line):
            continue
        cleaned.append((number, _strip_continuation(_strip_sides(line))))
    return cleaned


def _strip_sides(line: str) -> str:
    """Remove a border character on both sides (``│ ... │``) or on the right only (DBeaver)."""
    # String operations, not regular expressions: lines can carry thousands of indent spaces.
    stripped = line.strip()
    if len(stripped) >= 2 and stripped[0] in _FRAME_SIDES and stripped[-1] == stripped[0]:
        return stripped[1:-1]
    right = line.rstrip()
    if right and right[-1] in _FRAME_SIDES:
        return right[:-1].rstrip()
    return line


def _strip_continuation(line: str) -> str:
    """Remove psql's ``+`` (ASCII) or ``↵`` (Unicode) mark of a value that goes on on the next line."""
    right = line.rstrip()
    if right.endswith(("+", "↵")):
        return right[:-1].rstrip()
    return line


def _unquote(lines: Lines) -> Lines:
    """pgAdmin copies every line as a CSV cell: ``"..."`` with doubled inner quotes."""
    content = [line.strip() for _, line in lines if line.strip()]
    if not content or not all(len(c) >= 2 and c[0] == '"' and c[-1] == '"' for c in content):
        return lines
    return [
        (number, line.strip()[1:-1].replace('""', '"') if line.strip() else line) for number, line in lines
    ]


# --------------------------------------------------------------------------------------------------
# Text format

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_ESTIMATE = (
    rf"\(cost=(?P<startup>{_NUMBER})\.\.(?P<total>{_NUMBER}) rows=(?P<rows>{_NUMBER}) width=(?P<width>\d+)\)"
)
_ACTUAL = (
    rf"\(actual (?:time=(?P<astart>{_NUMBER})\.\.(?P<atotal>{_NUMBER}) )?"
    rf"rows=(?P<arows>{_NUMBER}) loops=(?P<loops>{_NUMBER})\)"
)
_TAIL = re.compile(rf"^(?:{_ESTIMATE})?\s*(?:{_ACTUAL}|(?P<never>\(never executed\)))?\s*$")
_TAIL_START = re.compile(r"\((?=cost=|actual |never executed\))")
_LOOSE_NODE = re.compile(r"\((?:cost=\d|actual (?:time|rows)=|never executed\))")
_ARROW = re.compile(r"^(\s*)->\s+(.*)$")
_HEADER = re.compile(r"^\s*((?:CTE|InitPlan|SubPlan)\b.*)$")
_KEY_VALUE = re.compile(r"^\s*(?P<key>[A-Za-z][\w/() -]*?):(?:\s+(?P<value>.*))?$")
_STATEMENT_KEYS = re.compile(
    r"^\s*(?P<key>Planning Time|Planning time|Execution Time|Execution time|Total runtime|Planning|JIT|"
    r"Settings|Serialization|Query Identifier|Time)\s*:(?P<value>.*)$"
)
_TRIGGER = re.compile(
    r"^\s*Trigger(?: (?P<name>(?!for constraint\b)\S+))?(?: for constraint (?P<constraint>\S+))?"
    rf"(?: on (?P<relation>\S+))?: time=(?P<time>{_NUMBER}) calls=(?P<calls>\d+)\s*$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _paren_balance(line: str) -> int:
    """``(`` minus ``)`` outside single-quoted literals."""
    if "'" not in line:  # no literal to skip: count in C (most lines)
        return line.count("(") - line.count(")")
    balance = 0
    quoted = False
    for char in line:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            balance += 1
        elif not quoted and char == ")":
            balance -= 1
    return balance


def _plan_start(lines: Lines) -> int:
    """Index of the first line of the plan: the first operator line, skipping SQL and psql chatter."""
    for index, (_, line) in enumerate(lines):
        if _LOOSE_NODE.search(line) and not _KEY_VALUE.match(line):
            return index
    for index, (_, line) in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("--") and not stripped.endswith(";"):
            return index
    return len(lines)


def _join_wrapped(lines: Lines) -> Lines:
    """Put back lines that a terminal or client wrapped at a fixed width."""
    joined: Lines = []
    for number, line in lines:
        if not line.strip():
            continue
        if joined and _is_continuation(line):
            previous_number, previous = joined[-1]
            joined[-1] = (previous_number, previous + line)
        else:
            joined.append((number, line))
    return [(number, line.rstrip()) for number, line in joined]


def _is_continuation(line: str) -> bool:
    if _ARROW.match(line) or _STATEMENT_KEYS.match(line) or _TRIGGER.match(line):
        return False
    if _paren_balance(line) < 0:
        return True
    return not line[:1].isspace() or line.lstrip().startswith("(")


@dataclass
class _Frame:
    """An open operator (``node`` set) or an InitPlan/SubPlan/CTE header (``header`` set) in the text."""

    column: int
    node: RawNode | None = None
    header: str | None = None


@dataclass
class _Section:
    """A statement-level block such as ``Planning:`` or ``JIT:`` whose lines are indented below it."""

    column: int
    target: dict[str, Any]
    name: str


@dataclass
class _TextParser:
    """Turns the lines of text EXPLAIN output into JSON-shaped statement documents."""

    source: str | None
    max_depth: int
    statements: list[dict[str, Any]] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)
    section: _Section | None = None
    in_footer: bool = False
    root_column: int = 0

    def parse(self, lines: Lines) -> list[dict[str, Any]]:
        body = _join_wrapped(lines[_plan_start(lines) :])
        self._check_costless(body)
        for number, line in body:
            self._line(number, line)
        if not self.statements:
            first = lines[0][0] if lines else 1
            raise PlanParseError(
                "no plan operators found in the text",
                source=self.source,
                position=f"line {first}",
                hint="expected EXPLAIN output (text or FORMAT JSON) for PostgreSQL",
            )
        return self.statements

    def _check_costless(self, body: Lines) -> None:
        """Without costs or arrows the text must at least start with a PostgreSQL operator name."""
        if not body or any(_LOOSE_NODE.search(line) or _ARROW.match(line) for _, line in body):
            return
        number, first = body[0]
        if _parse_label(first.strip()).get("Node Type") not in NODE_TYPES:
            raise PlanParseError(
                "no plan operators found in the text",
                source=self.source,
                position=f"line {number}",
                hint="expected EXPLAIN output (text or FORMAT JSON) for PostgreSQL",
            )

    def _line(self, number: int, line: str) -> None:
        arrow = _ARROW.match(line)
        if arrow:
            self._child(number, len(arrow.group(1)), arrow.group(2))
            return
        if self._statement_line(line):
            return
        if self.section is not None and _indent(line) > self.section.column:
            _apply_detail(self.section.target, line.strip(), section=self.section.name)
            return
        self.section = None
        if not self.statements or self._starts_statement(line):
            self._root(number, line)
            return
        self._detail(number, line)

    def _starts_statement(self, line: str) -> bool:
        if not _LOOSE_NODE.search(line) or _KEY_VALUE.match(line):
            return False
        return self.in_footer or _indent(line) <= self.root_column

    def _root(self, number: int, line: str) -> None:
        node = _node_from_line(line.strip(), number, self.source)
        self.statements.append({"Plan": node})
        self.stack = [_Frame(column=_indent(line), node=node)]
        self.root_column = _indent(line)
        self.in_footer = False
        self.section = None

    def _child(self, number: int, column: int, text: str) -> None:
        if not self.statements or self.in_footer:
            self._root(number, " " * column + text)
            return
        self._pop_to(column)
        node = _node_from_line(text, number, self.source)
        top = self.stack[-1]
        if top.header is not None:  # the child of an InitPlan / SubPlan / CTE line
            node["Parent Relationship"] = "SubPlan" if top.header.startswith("SubPlan") else "InitPlan"
            node["Subplan Name"] = top.header
        parent = next(frame.node for frame in reversed(self.stack) if frame.node is not None)
        parent.setdefault("Plans", []).append(node)
        self.stack.append(_Frame(column=column, node=node))
        if sum(1 for frame in self.stack if frame.node is not None) > self.max_depth:
            raise PlanParseError(
                f"the plan is nested deeper than {self.max_depth} operators",
                source=self.source,
                position=f"line {number}",
                hint="raise max_depth if this plan is genuine",
            )

    def _pop_to(self, column: int) -> None:
        while len(self.stack) > 1 and self.stack[-1].column >= column:
            self.stack.pop()

    def _detail(self, number: int, line: str) -> None:
        column = _indent(line)
        self._pop_to(column)
        header = _HEADER.match(line)
        if header and not _KEY_VALUE.match(line):
            self.stack.append(_Frame(column=column, header=header.group(1).strip()))
            return
        owner = next(frame.node for frame in reversed(self.stack) if frame.node is not None)
        assert owner is not None
        if _LOOSE_NODE.search(line) and not _KEY_VALUE.match(line):
            raise PlanParseError(
                "an operator line is not where the plan tree allows it",
                source=self.source,
                position=f"line {number}",
                hint=_TEXT_HINT,
            )
        _apply_detail(owner, line.strip())

    def _statement_line(self, line: str) -> bool:
        trigger = _TRIGGER.match(line)
        if trigger and self.statements:
            self.statements[-1].setdefault("Triggers", []).append(_trigger(trigger))
            self.in_footer = True
            return True
        match = _STATEMENT_KEYS.match(line)
        if not match or not self.statements:
            return False
        self.in_footer = True
        self.section = None
        document = self.statements[-1]
        key, value = match.group("key"), match.group("value").strip()
        if key in ("Planning", "JIT") and not value:
            section: dict[str, Any] = document.setdefault(key, {})
            self.section = _Section(column=_indent(line), target=section, name=key)
        else:
            _statement_value(document, key, value)
        return True


def _trigger(match: re.Match[str]) -> dict[str, Any]:
    trigger: dict[str, Any] = {"Time": float(match.group("time")), "Calls": int(match.group("calls"))}
    for group, key in (("name", "Trigger Name"), ("constraint", "Constraint Name"), ("relation", "Relation")):
        if match.group(group):
            trigger[key] = match.group(group)
    return trigger


def _statement_value(document: dict[str, Any], key: str, value: str) -> None:
    """Store one footer line (``Planning Time: 1.2 ms``, ``Settings: a = 'b'`` ...) under its JSON key."""
    if key in ("Planning Time", "Planning time"):
        document["Planning Time"] = _number(value)
    elif key in ("Execution Time", "Execution time", "Total runtime"):
        document["Execution Time"] = _number(value)
    elif key == "Settings":
        document["Settings"] = dict(re.findall(r"(\w+) = '((?:[^']|'')*)'", value))
    elif key == "Query Identifier":
        document["Query Identifier"] = value
    elif key == "Serialization":
        document["Serialization"] = _key_equals_value(value, lambda prefix, name: name.title())
    # "Time: 12 ms" is psql's \timing, not part of the plan: ignored.


# --------------------------------------------------------------------------------------------------
# Text: operator lines

_JOIN_LABEL = re.compile(
    r"^(?P<algo>Nested Loop|Hash|Merge)(?: (?P<type>Left|Right|Full|Semi|Anti|Right Semi|Right Anti))? Join$"
)
_AGG_LABEL = {
    "Aggregate": "Plain",
    "GroupAggregate": "Sorted",
    "HashAggregate": "Hashed",
    "MixedAggregate": "Mixed",
}
_MODIFY_LABEL = re.compile(r"^(?P<op>Insert|Update|Delete|Merge) on (?P<rest>.+)$")
_SETOP_LABEL = re.compile(r"^(?P<op>HashSetOp|SetOp)(?: (?P<command>.+))?$")
_INDEX_LABEL = re.compile(
    r"^(?P<type>Index Scan|Index Only Scan)(?P<backward> Backward)? using (?P<index>\"(?:[^\"]|\"\")+\"|\S+)"
    r" on (?P<rest>.+)$"
)
_CUSTOM_LABEL = re.compile(r"^Custom Scan \((?P<provider>[^)]*)\)(?: on (?P<rest>.+))?$")
# Node type -> what the words after "on" name (relation, CTE, function, alias only ...).
_SCAN_TARGETS = {
    "Seq Scan": "relation",
    "Sample Scan": "relation",
    "Bitmap Heap Scan": "relation",
    "Tid Scan": "relation",
    "Tid Range Scan": "relation",
    "Foreign Scan": "relation",
    "Bitmap Index Scan": "index",
    "CTE Scan": "cte",
    "WorkTable Scan": "cte",
    "Function Scan": "function",
    "Subquery Scan": "alias",
    "Values Scan": "alias",
    "Table Function Scan": "alias",
    "Named Tuplestore Scan": "tuplestore",
}
_SCAN_LABEL = re.compile(
    r"^(?P<type>" + "|".join(sorted(_SCAN_TARGETS, key=len, reverse=True)) + r")(?:(?: on)? (?P<rest>.+))?$"
)
_IDENTIFIER = re.compile(r'"(?:[^"]|"")+"|[^\s."]+')


def _node_from_line(text: str, number: int, source: str | None) -> RawNode:
    """Build the JSON-shaped dict of one operator line: type, objects, estimates, actuals."""
    tail_start = _TAIL_START.search(text)
    label, tail = (text[: tail_start.start()], text[tail_start.start() :]) if tail_start else (text, "")
    node: RawNode = {}
    if tail:
        match = _TAIL.match(tail.strip())
        if match is None:
            raise PlanParseError(
                "an operator line is cut off or garbled",
                source=source,
                position=f"line {number}",
                hint=_TEXT_HINT,
            )
        _apply_numbers(node, match)
    node.update(_parse_label(label.strip()))
    return node


def _apply_numbers(node: RawNode, match: re.Match[str]) -> None:
    if match.group("total") is not None:
        node["Startup Cost"] = float(match.group("startup"))
        node["Total Cost"] = float(match.group("total"))
        node["Plan Rows"] = _int_or_float(match.group("rows"))
        node["Plan Width"] = int(match.group("width"))
    if match.group("never"):
        node.update(
            {"Actual Startup Time": 0.0, "Actual Total Time": 0.0, "Actual Rows": 0, "Actual Loops": 0}
        )
    elif match.group("loops") is not None:
        if match.group("atotal") is not None:
            node["Actual Startup Time"] = float(match.group("astart"))
            node["Actual Total Time"] = float(match.group("atotal"))
        node["Actual Rows"] = _int_or_float(match.group("arows"))
        node["Actual Loops"] = _int_or_float(match.group("loops"))


def _parse_label(label: str) -> RawNode:
    """``Parallel Index Only Scan Backward using ix on s.t a`` -> JSON keys of that node."""
    node: RawNode = {}
    for prefix, key, value in (
        ("Parallel ", "Parallel Aware", True),
        ("Async ", "Async Capable", True),
        ("Partial ", "Partial Mode", "Partial"),
        ("Finalize ", "Partial Mode", "Finalize"),
    ):
        if label.startswith(prefix):
            node[key] = value
            label = label[len(prefix) :]
    for parser in (
        _label_join,
        _label_aggregate,
        _label_modify,
        _label_setop,
        _label_index,
        _label_custom,
        _label_scan,
    ):
        parsed = parser(label)
        if parsed is not None:
            node.update(parsed)
            return node
    node["Node Type"] = label
    return node


def _label_join(label: str) -> RawNode | None:
    if label == "Nested Loop":
        return {"Node Type": "Nested Loop", "Join Type": "Inner"}
    match = _JOIN_LABEL.match(label)
    if not match:
        return None
    algo = match.group("algo")
    return {
        "Node Type": "Nested Loop" if algo == "Nested Loop" else f"{algo} Join",
        "Join Type": match.group("type") or "Inner",
    }


def _label_aggregate(label: str) -> RawNode | None:
    strategy = _AGG_LABEL.get(label)
    return {"Node Type": "Aggregate", "Strategy": strategy} if strategy else None


def _label_modify(label: str) -> RawNode | None:
    match = _MODIFY_LABEL.match(label)
    if not match:
        return None
    node: RawNode = {"Node Type": "ModifyTable", "Operation": match.group("op")}
    node.update(_relation_words(match.group("rest")))
    return node


def _label_setop(label: str) -> RawNode | None:
    match = _SETOP_LABEL.match(label)
    if not match:
        return None
    node: RawNode = {
        "Node Type": "SetOp",
        "Strategy": "Hashed" if match.group("op") == "HashSetOp" else "Sorted",
    }
    if match.group("command"):
        node["Command"] = match.group("command")
    return node


def _label_index(label: str) -> RawNode | None:
    match = _INDEX_LABEL.match(label)
    if not match:
        return None
    node: RawNode = {
        "Node Type": match.group("type"),
        "Index Name": _unquote_identifier(match.group("index")),
        "Scan Direction": "Backward" if match.group("backward") else "Forward",
    }
    node.update(_relation_words(match.group("rest")))
    return node


def _label_custom(label: str) -> RawNode | None:
    match = _CUSTOM_LABEL.match(label)
    if not match:
        return None
    node: RawNode = {"Node Type": "Custom Scan", "Custom Plan Provider": match.group("provider")}
    if match.group("rest"):
        node.update(_relation_words(match.group("rest")))
    return node


def _label_scan(label: str) -> RawNode | None:
    match = _SCAN_LABEL.match(label)
    if not match:
        return None
    node_type = match.group("type")
    node: RawNode = {"Node Type": node_type}
    rest = match.group("rest")
    if not rest:
        return node
    target = _SCAN_TARGETS[node_type]
    words = _identifiers(rest)
    if target == "relation":
        node.update(_relation_words(rest))
    elif target == "index":
        node["Index Name"] = words[0][-1]
    elif target in ("cte", "function", "tuplestore"):
        name_key = {"cte": "CTE Name", "function": "Function Name", "tuplestore": "Tuplestore Name"}[target]
        node[name_key] = words[0][-1]
        if len(words[0]) > 1:
            node["Schema"] = words[0][-2]
        node["Alias"] = words[1][-1] if len(words) > 1 else words[0][-1]
    else:
        node["Alias"] = words[0][-1]
    return node


def _relation_words(rest: str) -> RawNode:
    """``public.tb tb_1`` -> Relation Name, Schema, Alias (Alias defaults to the relation, as in JSON)."""
    words = _identifiers(rest)
    name = words[0]
    node: RawNode = {"Relation Name": name[-1]}
    if len(name) > 1:
        node["Schema"] = name[-2]
    node["Alias"] = words[1][-1] if len(words) > 1 else name[-1]
    return node


def _identifiers(text: str) -> list[list[str]]:
    """Split ``"My Schema".tbl alias`` into dotted names: ``[["My Schema", "tbl"], ["alias"]]``."""
    names: list[list[str]] = []
    current: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            if current:
                names.append(current)
                current = []
            position += 1
        elif char == ".":
            position += 1
        else:
            match = _IDENTIFIER.match(text, position)
            if match is None:  # a lone quote: take the rest as one name
                current.append(text[position:].strip())
                break
            current.append(_unquote_identifier(match.group(0)))
            position = match.end()
    if current:
        names.append(current)
    return names or [[text]]


def _unquote_identifier(word: str) -> str:
    if len(word) >= 2 and word[0] == '"' and word[-1] == '"':
        return word[1:-1].replace('""', '"')
    return word


# --------------------------------------------------------------------------------------------------
# Text: detail lines under an operator

_MULTI_FIELD = re.compile(
    r"(?P<key>[A-Z][A-Za-z/ -]{0,40}?):\s+(?P<value>.*?)(?=\s{2,}[A-Z][A-Za-z/ -]{0,40}?:\s|$)"
)
_ORIGINALLY = re.compile(rf"^(?P<value>{_NUMBER})(?:\s*\(originally (?P<original>{_NUMBER})\))?")
_KB = re.compile(rf"^({_NUMBER})\s*(?:kB|ms)$")
_WORKER = re.compile(r"^Worker (?P<number>\d+):\s+(?P<rest>.*)$")
_ACTUAL_ONLY = re.compile(rf"^(?:{_ACTUAL}|(?P<never>\(never executed\)))")

# "A: x  B: y" lines: first key -> renames of each field to the JSON key.
_MULTI_FIELD_NAMES: dict[str, dict[str, str]] = {
    "Buckets": {"Buckets": "Hash Buckets", "Batches": "Hash Batches", "Memory Usage": "Peak Memory Usage"},
    "Hits": {
        "Hits": "Cache Hits",
        "Misses": "Cache Misses",
        "Evictions": "Cache Evictions",
        "Overflows": "Cache Overflows",
        "Memory Usage": "Peak Memory Usage",
    },
    "Planned Partitions": {"Batches": "HashAgg Batches", "Memory Usage": "Peak Memory Usage"},
    "Batches": {"Batches": "HashAgg Batches", "Memory Usage": "Peak Memory Usage"},
    "Storage": {"Maximum Storage": "Maximum Storage"},
}


def _apply_detail(node: dict[str, Any], line: str, section: str | None = None) -> None:
    """Parse one ``Key: value`` line into ``node`` under the key EXPLAIN (FORMAT JSON) would use."""
    worker = _WORKER.match(line)
    if worker:
        _apply_worker(node, int(worker.group("number")), worker.group("rest"))
        return
    match = _KEY_VALUE.match(line)
    if match is None:
        node.setdefault("Details", []).append(strip_literals(line))
        return
    key, value = match.group("key"), (match.group("value") or "").strip()
    handler = _DETAIL_HANDLERS.get(key)
    if section == "JIT":
        handler = _jit_field
    if handler is not None:
        handler(node, key, value)
    elif key in _MULTI_FIELD_NAMES:
        _apply_multi_field(node, key, line)
    else:
        node[key] = _scalar(value)


def _apply_worker(node: dict[str, Any], number: int, rest: str) -> None:
    workers: list[dict[str, Any]] = node.setdefault("Workers", [])
    entry = next((w for w in workers if w.get("Worker Number") == number), None)
    if entry is None:
        entry = {"Worker Number": number}
        workers.append(entry)
    actual = _TAIL.match(rest.strip()) if _ACTUAL_ONLY.match(rest) else None
    if actual:
        _apply_numbers(entry, actual)
        return
    _apply_detail(entry, rest)


def _apply_multi_field(node: dict[str, Any], first_key: str, line: str) -> None:
    names = _MULTI_FIELD_NAMES[first_key]
    for match in _MULTI_FIELD.finditer(line.strip()):
        key = names.get(match.group("key"), match.group("key"))
        value = match.group("value").strip()
        originally = _ORIGINALLY.match(value)
        if originally and originally.group("original") is not None:
            node[key] = _int_or_float(originally.group("value"))
            node[f"Original {key}"] = _int_or_float(originally.group("original"))
        else:
            node[key] = _scalar(value)


def _sort_method(node: dict[str, Any], key: str, value: str) -> None:
    match = re.match(rf"^(?P<method>.+?)\s+(?P<type>Disk|Memory):\s*(?P<kb>{_NUMBER})kB\s*$", value)
    if match is None:
        node["Sort Method"] = value
        return
    node["Sort Method"] = match.group("method")
    node["Sort Space Type"] = match.group("type")
    node["Sort Space Used"] = _int_or_float(match.group("kb"))


def _key_equals_value(value: str, name: Callable[[str, str], str]) -> dict[str, Any]:
    """``shared hit=1 read=2, temp read=3`` -> ``{name("shared", "hit"): 1, ...}``."""
    fields: dict[str, Any] = {}
    for group in re.split(r",\s*", value):
        prefix = ""
        for word in group.split():
            if "=" not in word:
                prefix = word
                continue
            item, raw = word.split("=", 1)
            fields[name(prefix, item)] = _scalar(raw)
    return fields


def _buffers(node: dict[str, Any], key: str, value: str) -> None:
    node.update(
        _key_equals_value(value, lambda prefix, item: f"{prefix.title()} {item.title()} Blocks".strip())
    )


def _io_timings(node: dict[str, Any], key: str, value: str) -> None:
    def name(prefix: str, item: str) -> str:
        kind = "Read" if item == "read" else "Write" if item == "write" else item.title()
        return f"{prefix.title()} I/O {kind} Time".strip()

    node.update(_key_equals_value(value, name))


def _named_fields(names: dict[str, str]) -> Callable[[dict[str, Any], str, str], None]:
    def handler(node: dict[str, Any], key: str, value: str) -> None:
        node.update(_key_equals_value(value, lambda prefix, item: names.get(item, f"{key} {item.title()}")))

    return handler


def _jit_field(node: dict[str, Any], key: str, value: str) -> None:
    if key == "Options":
        node[key] = {name: flag == "true" for name, flag in re.findall(r"(\w+) (true|false)", value)}
    elif key == "Timing":
        node[key] = {name: float(ms) for name, ms in re.findall(rf"(\w+) ({_NUMBER}) ms", value)}
    else:
        node[key] = _scalar(value)


_DETAIL_HANDLERS: dict[str, Callable[[dict[str, Any], str, str], None]] = {
    "Sort Method": _sort_method,
    "Buffers": _buffers,
    "I/O Timings": _io_timings,
    "WAL": _named_fields(
        {"records": "WAL Records", "fpi": "WAL FPI", "bytes": "WAL Bytes", "buffers full": "WAL Buffers Full"}
    ),
    "Heap Blocks": _named_fields({"exact": "Exact Heap Blocks", "lossy": "Lossy Heap Blocks"}),
    "Tuples": _named_fields(
        {
            "inserted": "Tuples Inserted",
            "updated": "Tuples Updated",
            "deleted": "Tuples Deleted",
            "skipped": "Tuples Skipped",
        }
    ),
    "Memory": _named_fields({"used": "Memory Used", "allocated": "Memory Allocated"}),
}


def _scalar(value: str) -> Any:
    """Typed value of a text field: numbers (``12``, ``1.5``, ``35157kB``, ``0.1 ms``), booleans, text."""
    stripped = value.strip()
    if re.fullmatch(_NUMBER, stripped):
        return _int_or_float(stripped)
    kb = _KB.match(stripped)
    if kb:
        return _int_or_float(kb.group(1))
    if stripped in ("true", "false"):
        return stripped == "true"
    return stripped


def _number(value: str) -> float | None:
    match = re.match(_NUMBER, value.strip())
    return float(match.group(0)) if match else None


def _int_or_float(text: str) -> int | float:
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


# --------------------------------------------------------------------------------------------------
# JSON-shaped dicts -> model


@dataclass(frozen=True)
class _Context:
    """What a node inherits from its ancestors."""

    relation: RawNode | None = None  # nearest ancestor naming a relation (for Bitmap Index Scan)
    under_gather: bool = False


def _statement(
    index: int, document: dict[str, Any], *, fmt: str, source: str | None, max_depth: int
) -> PlanStatement:
    """Build one :class:`PlanStatement` from a JSON statement object (or its text equivalent)."""
    root = _tree(document["Plan"], index=index, source=source, max_depth=max_depth)
    nodes = list(root.walk())
    statement = PlanStatement(
        index=index,
        root=root,
        text=strip_literals(document["Query Text"]) if isinstance(document.get("Query Text"), str) else None,
        statement_type=_statement_type(root),
        is_actual="Execution Time" in document or any(n.actual_executions is not None for n in nodes),
        engine_query_hash=str(document["Query Identifier"]) if "Query Identifier" in document else None,
        estimated_cost=root.estimated_cost,
        estimated_rows=root.estimated_rows,
        planning_ms=_float(document.get("Planning Time")),
        query_elapsed_ms=_float(document.get("Execution Time")),
        dop=_dop(nodes, document.get("Settings")),
    )
    _unqualify_single_relation(nodes)
    skip = {"Plan", "Planning Time", "Execution Time", "Query Text", "Query Identifier"}
    statement.properties = {key: value for key, value in document.items() if key not in skip}
    statement.properties["explain_format"] = fmt
    statement.properties[SCHEMA_OPTIONAL] = True  # only VERBOSE names the schema
    _workers_summary(statement, nodes)
    return statement


def _statement_type(root: PlanNode) -> str:
    if root.physical_op == "ModifyTable" and root.logical_op:
        return root.logical_op.upper()
    return "SELECT"


def _dop(nodes: list[PlanNode], settings: Any) -> int:
    planned: list[int] = [
        value for n in nodes if isinstance(value := n.properties.get("Workers Planned"), int)
    ]
    if not planned:
        return 1
    leader_off = isinstance(settings, dict) and settings.get("parallel_leader_participation") == "off"
    return max(planned) + (0 if leader_off else 1)


def _workers_summary(statement: PlanStatement, nodes: list[PlanNode]) -> None:
    for key in ("Workers Planned", "Workers Launched"):
        values = [n.properties[key] for n in nodes if isinstance(n.properties.get(key), int)]
        if values:
            statement.properties[key] = max(values)


def _tree(raw_root: Any, *, index: int, source: str | None, max_depth: int) -> PlanNode:
    """Convert the nested ``Plan`` dicts into PlanNodes, pre-order ids, without recursion."""
    root: PlanNode | None = None
    next_id = 0
    pending: list[tuple[Any, PlanNode | None, _Context, int, str]] = [(raw_root, None, _Context(), 1, "Plan")]
    while pending:
        raw, parent, context, depth, path = pending.pop()
        where = f"statement {index + 1}, {path}"
        if depth > max_depth:
            raise PlanParseError(
                f"the plan is nested deeper than {max_depth} operators",
                source=source,
                position=where,
                hint="raise max_depth if this plan is genuine",
            )
        node = _node(_checked_node(raw, source, where), next_id, context)
        next_id += 1
        if parent is None:
            root = node
        else:
            parent.children.append(node)
        child_context = _child_context(raw, context)
        children = _checked_children(raw, source, where)
        for position in range(len(children) - 1, -1, -1):
            pending.append((children[position], node, child_context, depth + 1, f"{path}.Plans[{position}]"))
    assert root is not None
    return root


def _checked_node(raw: Any, source: str | None, where: str) -> RawNode:
    if not isinstance(raw, dict) or not isinstance(raw.get("Node Type"), str):
        raise PlanParseError('a plan node has no "Node Type"', source=source, position=where, hint=_JSON_HINT)
    return raw


def _checked_children(raw: RawNode, source: str | None, where: str) -> list[Any]:
    children = raw.get("Plans", [])
    if not isinstance(children, list):
        raise PlanParseError('"Plans" is not a list', source=source, position=where, hint=_JSON_HINT)
    return children


def _child_context(raw: RawNode, context: _Context) -> _Context:
    relation = raw if "Relation Name" in raw else context.relation
    under_gather = context.under_gather or raw["Node Type"] in _GATHER_TYPES
    return _Context(relation=relation, under_gather=under_gather)


def _node(raw: RawNode, node_id: int, context: _Context) -> PlanNode:
    loops = _float(raw.get("Actual Loops"))
    node = PlanNode(
        node_id=node_id,
        physical_op=_physical_op(raw),
        logical_op=_logical_op(raw),
        object=_object(raw, context),
        estimated_rows=_float(raw.get("Plan Rows")),
        estimated_cost=_float(raw.get("Total Cost")),
        parallel=bool(raw.get("Parallel Aware")) or context.under_gather,
        predicates=_predicates(raw, _own_alias(raw, context)),
        properties=_properties(raw),
    )
    if loops is not None:
        node.actual_executions = loops
        rows = _float(raw.get("Actual Rows"))
        node.actual_rows = rows * loops if rows is not None else None
        total = _float(raw.get("Actual Total Time"))
        node.actual_elapsed_ms = total * loops if total is not None else None
    node.actual_logical_reads = _logical_reads(raw)
    return node


def _physical_op(raw: RawNode) -> str:
    node_type: str = raw["Node Type"]
    if node_type == "Aggregate":
        return _AGGREGATE_OPS.get(str(raw.get("Strategy")), node_type)
    if node_type == "SetOp":
        return _SETOP_OPS.get(str(raw.get("Strategy")), node_type)
    return node_type


def _logical_op(raw: RawNode) -> str | None:
    node_type = raw["Node Type"]
    if "Join Type" in raw:
        return str(raw["Join Type"])
    if node_type == "ModifyTable" and "Operation" in raw:
        return str(raw["Operation"])
    if node_type == "Aggregate":
        return _PARTIAL_LOGICAL.get(str(raw.get("Partial Mode")), "Aggregate")
    if node_type == "SetOp" and "Command" in raw:
        return str(raw["Command"])
    return None


def _object(raw: RawNode, context: _Context) -> ObjectRef | None:
    relation = raw.get("Relation Name")
    index = raw.get("Index Name")
    if relation is None and index is None:
        return None
    owner = raw if relation is not None else (context.relation or {})
    return ObjectRef(
        table=str(owner.get("Relation Name") or ""),
        schema=_optional_str(owner.get("Schema")),
        index=_optional_str(index),
        alias=_optional_str(owner.get("Alias")),
    )


def _predicates(raw: RawNode, alias: str | None) -> list[Predicate]:
    return [
        Predicate(kind=kind, text=_unqualified(strip_literals(str(raw[key])), alias))
        for key, kind in PREDICATE_KINDS.items()
        if isinstance(raw.get(key), str) and raw[key]
    ]


# VERBOSE qualifies every column (``orders.total``, ``"*VALUES*".column1``); without it EXPLAIN leaves
# out the qualifier of a scan's own columns, and of every column when the query has one relation
# (explain.c: ``useprefix``). The model keeps the form without VERBOSE, so both read and hash alike.
def _own_alias(raw: RawNode, context: _Context) -> str | None:
    """The alias a scan's own columns are qualified with (a Bitmap Index Scan: its heap scan's)."""
    if "Alias" in raw:
        return _optional_str(raw["Alias"])
    if raw["Node Type"] == "Bitmap Index Scan" and context.relation is not None:
        return _optional_str(context.relation.get("Alias"))
    return None


def _unqualified(text: str, alias: str | None) -> str:
    if not alias or (alias + "." not in text and f'"{alias}".' not in text):
        return text
    quoted = re.escape(f'"{alias.replace(chr(34), chr(34) * 2)}"')
    pattern = rf'(?<![\w$."])(?:{quoted}|{re.escape(alias)})\.(?=[\w"])'
    return re.sub(pattern, "", text)


def _unqualify_single_relation(nodes: list[PlanNode]) -> None:
    """With one relation in the plan, no column is qualified without VERBOSE: drop its qualifier."""
    aliases = {str(node.properties["Alias"]) for node in nodes if node.properties.get("Alias")}
    if len(aliases) != 1:
        return
    (alias,) = aliases
    for node in nodes:
        if node.predicates:
            node.predicates = [Predicate(p.kind, _unqualified(p.text, alias)) for p in node.predicates]


def _properties(raw: RawNode) -> dict[str, Any]:
    """Every other key of the node, under its JSON name; expressions have their literals stripped."""
    properties: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "Plans" or key in PREDICATE_KINDS:
            continue
        properties[key] = _strip_expression(value) if key in _EXPRESSION_KEYS else value
    return properties


def _strip_expression(value: Any) -> Any:
    if isinstance(value, str):
        return strip_literals(value)
    if isinstance(value, list):
        return [strip_literals(item) if isinstance(item, str) else item for item in value]
    return value


def _logical_reads(raw: RawNode) -> float | None:
    keys = ("Shared Hit Blocks", "Shared Read Blocks", "Local Hit Blocks", "Local Read Blocks")
    values = [_float(raw.get(key)) for key in keys]
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _float(value: Any) -> float | None:
    """A JSON number (or numeric string) as float; anything else (bool, text, null) as None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
