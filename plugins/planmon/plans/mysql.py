"""Parse MySQL 5.6-8.0 and MariaDB ``EXPLAIN FORMAT=JSON`` / ``ANALYZE FORMAT=JSON`` into the plan model.

The JSON nests ``query_block`` objects that hold one operation (``table``, ``nested_loop``,
``ordering_operation``, ``grouping_operation``, ``duplicates_removal``, ``union_result``, MariaDB
``filesort`` / ``temporary_table`` / ``read_sorted_file`` ...) plus subqueries. The tree built here:

- every ``query_block`` is a ``Query Block`` node (cost = ``query_cost``); a block without tables
  (``"message": "No tables used"``) gets one ``Message`` child carrying the message as a warning;
- a ``nested_loop`` of n tables becomes a left-deep chain of n-1 binary join nodes, so joins read like
  the other engines'. The join's physical_op is ``Nested Loop``, or the join-buffer algorithm of its
  inner table: ``Block Nested Loop`` (MySQL ``using_join_buffer`` / MariaDB ``block-nl-join`` BNL),
  ``Hash Join`` (MySQL 8 ``hash join`` / MariaDB BNLH), ``Batched Key Access`` (BKA, BKAH);
- table access by ``access_type`` (kept as ``logical_op``):

  ======================  =====================
  access_type             physical_op
  ======================  =====================
  ALL                     Full Table Scan
  index                   Full Index Scan
  range                   Index Range Scan
  ref, ref_or_null        Index Lookup
  eq_ref                  Unique Key Lookup
  const, system           Constant Lookup
  index_merge             Index Merge
  fulltext                Fulltext Index Search
  unique_subquery         Unique Key Lookup
  index_subquery          Index Lookup
  hash_X (MariaDB)        as X
  ======================  =====================

- ``ordering_operation`` with filesort and MariaDB ``filesort`` become ``Sort``; without filesort the
  order comes from an index and no node is made. ``grouping_operation`` is ``Aggregate`` (with a
  ``Sort`` child when it uses filesort), ``duplicates_removal`` is ``Duplicate Removal``,
  ``union_result`` is ``Union``, ``buffer_result`` is ``Buffer Result``, ``windowing`` is ``Window``,
  ``materialized_from_subquery`` / MariaDB ``materialized`` is ``Materialize``. A temporary table is the
  ``using_temporary_table`` property of the operation that needs it.

Rows: ``estimated_rows`` is rows examined per scan (``rows_examined_per_scan``, or ``rows``), and the
MariaDB actual ``r_rows`` is that same quantity averaged per loop, so ``actual_rows = r_rows * r_loops``
and ``actual_executions = r_loops``. ``actual_elapsed_ms`` is ``r_total_time_ms`` (a total over loops),
or ``r_table_time_ms + r_other_time_ms`` (MariaDB 10.9+). A table's ``estimated_cost`` is its own
``read_cost + eval_cost``; a join node's is the ``prefix_cost`` of its inner table.

Statement ``properties["flavor"]`` is ``"mariadb"`` or ``"mysql"`` when the document shows which (ANALYZE
``r_*`` fields, ``block-nl-join``, ``filesort`` objects are MariaDB; ``cost_info``,
``rows_examined_per_scan``, ``ordering_operation`` are MySQL); it is absent when nothing tells.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from planmon.errors import PlanParseError
from planmon.plans.hygiene import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_PLAN_BYTES,
    decode_plan_bytes,
    json_values,
    structure_errors,
)
from planmon.plans.model import ObjectRef, Plan, PlanNode, PlanStatement, PlanWarning, Predicate
from planmon.plans.normalize import strip_literals

__all__ = ["parse"]

Raw = dict[str, Any]

ACCESS_OPS: dict[str, str] = {
    "ALL": "Full Table Scan",
    "index": "Full Index Scan",
    "range": "Index Range Scan",
    "ref": "Index Lookup",
    "ref_or_null": "Index Lookup",
    "eq_ref": "Unique Key Lookup",
    "const": "Constant Lookup",
    "system": "Constant Lookup",
    "index_merge": "Index Merge",
    "fulltext": "Fulltext Index Search",
    "unique_subquery": "Unique Key Lookup",
    "index_subquery": "Index Lookup",
}
JOIN_BUFFER_OPS: dict[str, str] = {
    "block nested loop": "Block Nested Loop",
    "bnl": "Block Nested Loop",
    "hash join": "Hash Join",
    "bnlh": "Hash Join",
    "batched key access": "Batched Key Access",
    "batched key access (unique)": "Batched Key Access",
    "bka": "Batched Key Access",
    "bkah": "Batched Key Access",
}
_SUBQUERY_KEYS = (
    "optimized_away_subqueries",
    "subqueries",
    "select_list_subqueries",
    "having_subqueries",
    "order_by_subqueries",
    "group_by_subqueries",
    "update_value_subqueries",
    "attached_subqueries",
)
_CHILD_KEYS = frozenset(
    {
        "query_block",
        "table",
        "nested_loop",
        "ordering_operation",
        "grouping_operation",
        "duplicates_removal",
        "union_result",
        "buffer_result",
        "windowing",
        "filesort",
        "temporary_table",
        "read_sorted_file",
        "block-nl-join",
        "materialized_from_subquery",
        "materialized",
        "query_specifications",
        "expression_cache",
        "window_functions_computation",
        "sorts",
        "recursive_union",
        "materialization",
        "range-checked-for-each-record",
        *_SUBQUERY_KEYS,
    }
)
_EXPRESSION_KEYS = frozenset({"sort_key", "having_condition", "ref", "windows", "sort_order"})
_MARIADB_KEYS = frozenset(
    {
        "r_loops",
        "r_rows",
        "r_filtered",
        "r_total_time_ms",
        "r_table_time_ms",
        "block-nl-join",
        "read_sorted_file",
        "filesort",
        "temporary_table",
        "query_optimization",
        "subqueries",
        "materialized",
        "r_engine_stats",
        "expression_cache",
    }
)
_MYSQL_KEYS = frozenset(
    {
        "cost_info",
        "rows_examined_per_scan",
        "rows_produced_per_join",
        "using_join_buffer",
        "ordering_operation",
        "grouping_operation",
        "optimized_away_subqueries",
        "materialized_from_subquery",
        "used_columns",
        "attached_subqueries",
        "buffer_result",
        "select_list_subqueries",
    }
)
_STATEMENT_FLAGS = ("insert", "update", "delete", "replace")
_ROW_SEPARATOR = re.compile(r"^\*+ *\d+\. row *\*+[ \t]*$", re.MULTILINE)
_LABEL = re.compile(r"^[ \t]*(?:EXPLAIN|ANALYZE)[ \t]*:[ \t]*", re.MULTILINE)
_HINT = "export the plan again with EXPLAIN FORMAT=JSON (MariaDB: ANALYZE FORMAT=JSON) and copy all of it"


def parse(
    data: bytes | str,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_PLAN_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Plan:
    """Parse MySQL / MariaDB EXPLAIN (or MariaDB ANALYZE) FORMAT=JSON output into a :class:`Plan`.

    Raises :class:`PlanParseError` (never another exception type) with a position and a hint when
    the input is malformed, truncated, too large or nested deeper than ``max_depth`` operators.
    """
    text = decode_plan_bytes(data, source=source, max_bytes=max_bytes)
    if not text.strip():
        raise PlanParseError("the plan is empty", source=source, hint=_HINT)
    with structure_errors(source=source, hint=_HINT, max_depth=max_depth):
        documents = _documents(_unlabel(text), source)
        statements = [
            _Builder(source, max_depth, index).statement(document) for index, document in enumerate(documents)
        ]
    return Plan(engine="mysql", statements=statements, source=source or "<bytes>")


def _unlabel(text: str) -> str:
    """Drop the ``\\G`` decorations of the mysql client: row separators and the ``EXPLAIN:`` label."""
    return _LABEL.sub("", _ROW_SEPARATOR.sub("", text))


def _documents(text: str, source: str | None) -> list[Raw]:
    """Decode one or more JSON documents (or a list of them) into ``{"query_block": ...}`` objects."""
    decoder = json.JSONDecoder(object_pairs_hook=_keep_repeated_tables)
    values: list[Any] = []
    for value in json_values(text, source=source, hint=_HINT, decoder=decoder):
        values.extend(value if isinstance(value, list) else [value])
    for number, value in enumerate(values, start=1):
        _check_document(value, number, source)
    if not values:
        raise PlanParseError("the JSON plan holds no statement", source=source, hint=_HINT)
    return values


def _check_document(value: Any, number: int, source: str | None) -> None:
    if isinstance(value, dict) and isinstance(value.get("query_block"), dict):
        return
    hint = _HINT
    if isinstance(value, dict) and "inputs" in value:
        hint = (
            "this is MySQL's explain_json_format_version=2; "
            "SET explain_json_format_version=1 and run EXPLAIN again"
        )
    raise PlanParseError(
        'a JSON plan statement has no "query_block" object',
        source=source,
        position=f"statement {number}",
        hint=hint,
    )


def _keep_repeated_tables(pairs: list[tuple[str, Any]]) -> Raw:
    """Older MariaDB repeats the ``table`` key for each joined table; keep them all as a nested loop."""
    keys = [key for key, _ in pairs]
    repeated = {key for key in ("table", "block-nl-join") if keys.count(key) > 1}
    if not repeated and not ("table" in keys and "block-nl-join" in keys):
        return dict(pairs)
    result: Raw = {}
    loop: list[Raw] = []
    for key, value in pairs:
        if key in ("table", "block-nl-join"):
            loop.append({key: value})
        else:
            result[key] = value
    result["nested_loop"] = loop
    return result


# --------------------------------------------------------------------------------------------------


def _float(value: Any) -> float | None:
    """JSON numbers and MySQL's numeric strings (``"16.72"``) as float; anything else as None."""
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


def _scalar_properties(raw: Raw, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The keys of ``raw`` that are not child operations, literals stripped from expressions."""
    properties: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _CHILD_KEYS or key in skip:
            continue
        expression = key in _EXPRESSION_KEYS or "condition" in key
        properties[key] = _strip(value) if expression else value
    return properties


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return strip_literals(value)
    if isinstance(value, list):
        return [strip_literals(item) if isinstance(item, str) else item for item in value]
    return value


def _walk_keys(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _flavor(document: Raw) -> str | None:
    keys = set(_walk_keys(document))
    if keys & _MARIADB_KEYS:
        return "mariadb"
    if keys & _MYSQL_KEYS:
        return "mysql"
    return None


def _set_actuals(node: PlanNode, raw: Raw) -> None:
    """MariaDB ANALYZE: r_loops, r_rows (per loop), time totals."""
    loops = _float(raw.get("r_loops"))
    if loops is None:
        return
    node.actual_executions = loops
    rows = _float(raw.get("r_rows"))
    output_rows = _float(raw.get("r_output_rows"))
    if rows is not None:
        node.actual_rows = rows * loops
    elif output_rows is not None:
        node.actual_rows = output_rows
    total = _float(raw.get("r_total_time_ms"))
    if total is None:
        parts = [_float(raw.get(key)) for key in ("r_table_time_ms", "r_other_time_ms")]
        present = [part for part in parts if part is not None]
        total = sum(present) if present else None
    node.actual_elapsed_ms = total


class _Builder:
    """Builds the node tree of one statement; tracks depth against the cap."""

    def __init__(self, source: str | None, max_depth: int, index: int) -> None:
        self.source = source
        self.max_depth = max_depth
        self.index = index
        self.builders: dict[str, Callable[[Any, Raw, int], list[PlanNode]]] = {
            "query_block": lambda value, _, depth: [self.query_block(value, depth)],
            "table": lambda value, _, depth: [self.table(value, depth)],
            "nested_loop": self.nested_loop,
            "ordering_operation": self.ordering,
            "grouping_operation": self.grouping,
            "duplicates_removal": self.duplicates_removal,
            "union_result": self.union,
            "buffer_result": lambda value, _, depth: [self.wrapper("Buffer Result", None, value, depth)],
            "windowing": lambda value, _, depth: [self.wrapper("Window", None, value, depth)],
            "filesort": lambda value, _, depth: [self.wrapper("Sort", "Order By", value, depth)],
            "temporary_table": lambda value, _, depth: self.content(value, depth),
            "read_sorted_file": lambda value, _, depth: self.content(value, depth),
            "expression_cache": self.expression_cache,
            # MariaDB: window functions sort their input (one filesort per window) in a temporary table
            "window_functions_computation": lambda value, _, depth: [
                self.wrapper("Window", None, value, depth)
            ],
            "sorts": self.sorts,
            "recursive_union": lambda value, raw, depth: self.union(value, raw, depth, "Recursive Union"),
            # MariaDB: an IN subquery run once into a temporary table with a unique key
            "materialization": lambda value, _, depth: [
                self.wrapper("Materialize", "Subquery", value, depth)
            ],
            "range-checked-for-each-record": self.range_checked,
        }

    # -- statement ---------------------------------------------------------------------------------

    def statement(self, document: Raw) -> PlanStatement:
        block = document["query_block"]
        root = self.query_block(block, 1)
        for node_id, node in enumerate(root.walk()):
            node.node_id = node_id
        nodes = list(root.walk())
        statement = PlanStatement(
            index=self.index,
            root=root,
            statement_type=_statement_type(nodes),
            is_actual=any(node.actual_executions is not None for node in nodes),
            estimated_cost=root.estimated_cost,
            query_elapsed_ms=_float(block.get("r_total_time_ms")),
            planning_ms=_float((document.get("query_optimization") or {}).get("r_total_time_ms")),
            dop=1,  # MySQL and MariaDB run a statement on one thread
            warnings=[warning for node in nodes for warning in node.warnings],
        )
        statement.properties = {"explain_format": "json", "select_id": block.get("select_id")}
        flavor = _flavor(document)
        if flavor is not None:
            statement.properties["flavor"] = flavor
        return statement

    # -- generic -----------------------------------------------------------------------------------

    def check_depth(self, depth: int) -> None:
        if depth > self.max_depth:
            raise PlanParseError(
                f"the plan is nested deeper than {self.max_depth} operators",
                source=self.source,
                position=f"statement {self.index + 1}",
                hint="raise max_depth if this plan is genuine",
            )

    def content(self, raw: Any, depth: int) -> list[PlanNode]:
        """The operation nodes inside a container object, in document order."""
        if not isinstance(raw, dict):
            raise PlanParseError(
                f"expected a JSON object, found {type(raw).__name__}",
                source=self.source,
                position=f"statement {self.index + 1}",
                hint=_HINT,
            )
        self.check_depth(depth)
        nodes: list[PlanNode] = []
        for key, value in raw.items():
            builder = self.builders.get(key)
            if builder is not None:
                nodes.extend(builder(value, raw, depth))
            elif key in _SUBQUERY_KEYS:
                nodes.extend(self.subqueries(key, value, depth))
            elif key not in _CHILD_KEYS and _holds_operations(value):
                # an operation this parser has no name for: its tables and blocks still count
                nodes.append(self.unknown_operation(key, value, depth + 1))
        return nodes

    def unknown_operation(self, key: str, value: Any, depth: int) -> PlanNode:
        node = self.wrapper(_operation_name(key), None, value if isinstance(value, dict) else {}, depth)
        for item in value if isinstance(value, list) else []:
            if isinstance(item, dict):
                node.children.extend(self.content(item, depth + 1))
        return node

    def sorts(self, items: Any, _: Raw, depth: int) -> list[PlanNode]:
        """MariaDB window functions: one ``{"filesort": ...}`` per window ordering."""
        nodes: list[PlanNode] = []
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict):
                nodes.extend(self.content(item, depth))
        return nodes

    def range_checked(self, raw: Any, _: Raw, depth: int) -> list[PlanNode]:
        """MariaDB "Range checked for each record": the table is read by a range on ``keys``
        chosen anew for every outer row (written as access_type ALL, but no full scan)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("table"), dict):
            return self.content(raw, depth) if isinstance(raw, dict) else []
        node = self.table(raw["table"], depth)
        node.physical_op = "Range Checked For Each Record"
        node.properties["range_checked_keys"] = raw.get("keys")
        return [node]

    def wrapper(self, physical_op: str, logical_op: str | None, raw: Raw, depth: int) -> PlanNode:
        """An operation node (Sort, Aggregate, Union ...) over the content of ``raw``."""
        node = PlanNode(
            node_id=0, physical_op=physical_op, logical_op=logical_op, properties=_scalar_properties(raw)
        )
        if "temporary_table" in raw:
            node.properties["using_temporary_table"] = True
        _set_actuals(node, raw)
        node.children = self.content(raw, depth + 1)
        return node

    def expression_cache(self, raw: Any, _: Raw, depth: int) -> list[PlanNode]:
        """MariaDB caches subquery results; the cache is a property of the subquery it wraps."""
        nodes = self.content(raw, depth)
        for node in nodes:
            node.properties["expression_cache"] = _scalar_properties(raw)
        return nodes

    def subqueries(self, key: str, items: Any, depth: int) -> list[PlanNode]:
        nodes: list[PlanNode] = []
        for item in items if isinstance(items, list) else [items]:
            for node in self.content(item, depth):
                node.properties["subquery"] = key
                for flag in ("dependent", "cacheable"):
                    if flag in item:
                        node.properties[flag] = item[flag]
                nodes.append(node)
        return nodes

    # -- query blocks and operations ---------------------------------------------------------------

    def query_block(self, raw: Any, depth: int) -> PlanNode:
        self.check_depth(depth)
        node = self.wrapper("Query Block", None, raw, depth)
        node.estimated_cost = _float((raw.get("cost_info") or {}).get("query_cost"))
        message = raw.get("message")
        if isinstance(message, str) and not node.children:
            node.children.append(_message_node(message, {"message": message}))
        return node

    def ordering(self, raw: Any, _: Raw, depth: int) -> list[PlanNode]:
        if raw.get("using_filesort"):
            return [self.wrapper("Sort", "Order By", raw, depth)]
        return self.content(raw, depth)

    def grouping(self, raw: Any, _: Raw, depth: int) -> list[PlanNode]:
        return [self.sorted_wrapper("Aggregate", "Group By", raw, depth)]

    def duplicates_removal(self, raw: Any, _: Raw, depth: int) -> list[PlanNode]:
        if isinstance(raw, list):  # MariaDB semi-join DuplicateWeedout: a list of joined tables
            node = PlanNode(node_id=0, physical_op="Duplicate Removal", logical_op="Distinct")
            node.children = self.nested_loop(raw, {}, depth + 1)
            return [node]
        return [self.sorted_wrapper("Duplicate Removal", "Distinct", raw, depth)]

    def sorted_wrapper(self, physical_op: str, logical_op: str, raw: Raw, depth: int) -> PlanNode:
        """Aggregate / Duplicate Removal, with a Sort child when MySQL says it uses filesort."""
        node = self.wrapper(physical_op, logical_op, raw, depth)
        if raw.get("using_filesort"):
            sort = PlanNode(
                node_id=0,
                physical_op="Sort",
                logical_op="Order By",
                properties={"using_filesort": True},
                children=node.children,
            )
            node.children = [sort]
        return node

    def union(self, raw: Any, _: Raw, depth: int, physical_op: str = "Union") -> list[PlanNode]:
        node = self.wrapper(physical_op, "UNION", raw, depth)
        for item in raw.get("query_specifications") or []:
            node.children.extend(self.content(item, depth + 1))
        return [node]

    def nested_loop(self, items: Any, _: Raw, depth: int) -> list[PlanNode]:
        """A left-deep chain of binary joins over the tables in join order."""
        if not isinstance(items, list):
            raise PlanParseError(
                '"nested_loop" is not a list',
                source=self.source,
                position=f"statement {self.index + 1}",
                hint=_HINT,
            )
        steps: list[tuple[PlanNode, Raw, Raw]] = []  # (access node, table dict, join-buffer dict)
        for item in items:
            join = item.get("block-nl-join") if isinstance(item, dict) else None
            checked = item.get("range-checked-for-each-record") if isinstance(item, dict) else None
            holder = join if isinstance(join, dict) else checked if isinstance(checked, dict) else item
            table = holder.get("table", {}) if isinstance(holder, dict) else {}
            for node in self.content(join if isinstance(join, dict) else item, depth + len(steps)):
                steps.append((node, table if isinstance(table, dict) else {}, join or {}))
        if not steps:
            return []
        outer, previous_table, _ = steps[0]
        for node, table, join in steps[1:]:
            outer = _join_node(outer, node, table, join, previous_table)
            previous_table = table
        return [outer]

    def table(self, raw: Any, depth: int) -> PlanNode:
        """One table access, with its materialised derived table and attached subqueries as children."""
        if not isinstance(raw, dict):
            raise PlanParseError(
                '"table" is not an object',
                source=self.source,
                position=f"statement {self.index + 1}",
                hint=_HINT,
            )
        self.check_depth(depth)
        if "table_name" not in raw and isinstance(raw.get("message"), str):
            return _message_node(raw["message"], _scalar_properties(raw))
        node = _table_node(raw)
        for key in ("materialized_from_subquery", "materialized"):
            if isinstance(raw.get(key), dict):
                node.children.append(self.wrapper("Materialize", None, raw[key], depth + 1))
        for key in _SUBQUERY_KEYS:
            if key in raw:
                node.children.extend(self.subqueries(key, raw[key], depth + 1))
        return node


def _holds_operations(value: Any) -> bool:
    """Whether a JSON value holds a table access or a query block somewhere inside."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "table" in item or "query_block" in item or "nested_loop" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _operation_name(key: str) -> str:
    """``some_new_operation`` -> ``Some New Operation``: the engine's own word for an unknown operation."""
    return " ".join(word.capitalize() for word in re.split(r"[_\-\s]+", key) if word)


def _message_node(message: str, properties: dict[str, Any]) -> PlanNode:
    return PlanNode(
        node_id=0,
        physical_op="Message",
        properties=properties,
        warnings=[PlanWarning(kind="message", message=message)],
    )


def _table_node(raw: Raw) -> PlanNode:
    access = str(raw.get("access_type", ""))
    base = access[5:] if access.startswith("hash_") else access
    table_name = raw.get("table_name")
    cost = raw.get("cost_info") or {}
    own_cost = [_float(cost.get(key)) for key in ("read_cost", "eval_cost")]
    node = PlanNode(
        node_id=0,
        physical_op=ACCESS_OPS.get(base, "Table Access"),
        logical_op=access or None,
        object=_object(table_name, raw.get("key")),
        estimated_rows=_float(raw.get("rows_examined_per_scan", raw.get("rows"))),
        estimated_cost=sum(c for c in own_cost if c is not None)
        if any(c is not None for c in own_cost)
        else None,
        predicates=_predicates(raw, {"attached_condition": "filter", "index_condition": "index_cond"}),
        properties=_scalar_properties(raw, frozenset({"attached_condition", "index_condition"})),
    )
    _set_actuals(node, raw)
    if isinstance(raw.get("message"), str):
        node.warnings.append(PlanWarning(kind="message", message=raw["message"]))
    return node


def _object(table_name: Any, key: Any) -> ObjectRef | None:
    """Real tables only: ``<derived2>``, ``<subquery2>``, ``<union1,2>`` are the engine's own work tables."""
    if not isinstance(table_name, str) or table_name.startswith("<"):
        return None
    return ObjectRef(table=table_name, index=key if isinstance(key, str) else None)


def _predicates(raw: Raw, kinds: dict[str, str]) -> list[Predicate]:
    return [
        Predicate(kind=kind, text=strip_literals(raw[key]))
        for key, kind in kinds.items()
        if isinstance(raw.get(key), str) and raw[key]
    ]


def _join_node(outer: PlanNode, inner: PlanNode, table: Raw, join: Raw, previous_table: Raw) -> PlanNode:
    """The binary join of the prefix so far (``outer``) with the next table (``inner``)."""
    algorithm = str(join.get("join_type") or table.get("using_join_buffer") or "")
    properties = _scalar_properties(join, frozenset({"attached_condition"})) if join else {}
    if table.get("using_join_buffer"):
        properties["using_join_buffer"] = table["using_join_buffer"]
    cost = table.get("cost_info") or {}
    node = PlanNode(
        node_id=0,
        physical_op=JOIN_BUFFER_OPS.get(algorithm.lower(), "Nested Loop"),
        estimated_rows=_float(table.get("rows_produced_per_join")),
        estimated_cost=_float(cost.get("prefix_cost")),
        predicates=_predicates(join, {"attached_condition": "join"}),
        properties=properties,
        children=[outer, inner],
    )
    executions = _float(previous_table.get("rows_produced_per_join"))
    if executions is not None:
        inner.estimated_executions = executions
    return node


def _statement_type(nodes: list[PlanNode]) -> str:
    for node in nodes:
        for flag in _STATEMENT_FLAGS:
            if node.properties.get(flag):
                return flag.upper()
    return "SELECT"
