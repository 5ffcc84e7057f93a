"""``planmon plan``: inspect plan files (shape hash, costs, findings) and diff two plans of one query."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

from planmon.errors import PlanmonError
from planmon.plans.diff import PlanDiff, diff_plans
from planmon.plans.fingerprint import shape_hash
from planmon.plans.model import ENGINES, Finding, MissingIndex, Plan, PlanNode, PlanStatement
from planmon.plans.parse import engine_name, parse_plan_file
from planmon.plans.rules import find_all

EXIT_OK = 0
EXIT_PARSE_FAILED = 2
TOP_OPERATORS = 5  # operators listed per statement in the text summary, most expensive first


@dataclass
class _Inspected:
    """One file's inspect result: the parsed plan, or the error that stopped it."""

    file: str
    plan: Plan | None = None
    error: str | None = None
    findings: list[list[Finding]] = field(default_factory=list)  # per statement


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="inspect and diff execution plan files",
        description="Read SQL Server, PostgreSQL and MySQL/MariaDB plan files without a database.",
    )
    actions = parser.add_subparsers(dest="plan_command", metavar="ACTION", required=True)

    inspect = actions.add_parser(
        "inspect",
        help="summarise plan files: shape hash, cost, DOP, top operators, missing indexes, findings",
        description="Summarise plan files. Exit 0 when every file parsed, 2 when any failed "
        "(the others are still reported).",
    )
    inspect.add_argument("files", nargs="+", metavar="FILE", help="plan file (.sqlplan, .json, .txt, ...)")
    _common_options(inspect)
    inspect.set_defaults(handler=_inspect)

    diff = actions.add_parser(
        "diff",
        help="what changed between two plans of the same query",
        description="Diff plan B against plan A statement by statement. Exit 2 when a file cannot be read.",
    )
    diff.add_argument("before", metavar="A", help="the earlier (baseline) plan file")
    diff.add_argument("after", metavar="B", help="the later plan file")
    _common_options(diff)
    diff.set_defaults(handler=_diff)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--engine",
        metavar="ENGINE",
        help=f"force the plan format instead of detecting it ({', '.join(ENGINES)})",
    )


# --- inspect --------------------------------------------------------------------------------------


def _inspect(args: argparse.Namespace) -> int:
    engine = engine_name(args.engine) if args.engine else None
    results = [_inspect_file(path, engine) for path in args.files]
    if args.json:
        print(json.dumps([_file_json(result) for result in results], indent=2))
    else:
        print("\n\n".join(_file_text(result) for result in results))
    return EXIT_PARSE_FAILED if any(result.error for result in results) else EXIT_OK


def _inspect_file(path: str, engine: str | None) -> _Inspected:
    try:
        plan = parse_plan_file(path, engine=engine)
        findings = [find_all(statement, plan.engine) for statement in plan.statements]
    except PlanmonError as exc:  # one unreadable file must not hide the others
        return _Inspected(file=path, error=str(exc))
    return _Inspected(file=path, plan=plan, findings=findings)


def _statement_json(statement: PlanStatement, findings: list[Finding]) -> dict[str, Any]:
    return {
        "index": statement.index,
        "statement_type": statement.statement_type,
        "shape_hash": shape_hash(statement),
        "engine_plan_hash": statement.engine_plan_hash,
        "engine_query_hash": statement.engine_query_hash,
        "is_actual": statement.is_actual,
        "estimated_cost": statement.estimated_cost,
        "dop": statement.dop,
        "operator_count": statement.operator_count,
        "missing_indexes": [_missing_index_json(index) for index in statement.missing_indexes],
        "findings": [_finding_json(finding) for finding in findings],
    }


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "severity": str(finding.severity),
        "node": finding.node_id,
        "message": finding.message,
        "evidence": finding.evidence,
    }


def _missing_index_json(index: MissingIndex) -> dict[str, Any]:
    return {
        "table": index.qualified_table,
        "impact": index.impact,
        "equality_columns": list(index.equality_columns),
        "inequality_columns": list(index.inequality_columns),
        "include_columns": list(index.include_columns),
    }


def _file_json(result: _Inspected) -> dict[str, Any]:
    plan = result.plan
    statements = [] if plan is None else plan.statements
    return {
        "file": result.file,
        "engine": None if plan is None else plan.engine,
        "engine_version": None if plan is None else plan.engine_version,
        "error": result.error,
        "statements": [
            _statement_json(statement, findings)
            for statement, findings in zip(statements, result.findings, strict=True)
        ],
    }


def _file_text(result: _Inspected) -> str:
    if result.plan is None:
        return f"{result.file}: ERROR {result.error}"
    plan = result.plan
    version = f" {plan.engine_version}" if plan.engine_version else ""
    lines = [f"{result.file}: {plan.engine}{version}, {len(plan.statements)} statement(s)"]
    for statement, findings in zip(plan.statements, result.findings, strict=True):
        lines.extend(_statement_text(statement, findings))
    return "\n".join(lines)


def _statement_text(statement: PlanStatement, findings: list[Finding]) -> list[str]:
    kind = "actual" if statement.is_actual else "estimated"
    cost = f"{statement.estimated_cost:g}" if statement.estimated_cost is not None else "-"
    lines = [
        f"  [{statement.index}] {statement.statement_type or 'statement'} ({kind})",
        f"      shape {shape_hash(statement)}  engine plan hash {statement.engine_plan_hash or '-'}",
        f"      cost {cost}  DOP {statement.dop or '-'}  operators {statement.operator_count}",
    ]
    for node in _top_operators(statement):
        target = f" {node.object.qualified}" if node.object is not None else ""
        lines.append(f"      op {node.node_id}: {node.physical_op}{target} cost {node.estimated_cost:g}")
    for index in statement.missing_indexes:
        impact = f" impact {index.impact:g}%" if index.impact is not None else ""
        columns = ", ".join((*index.equality_columns, *index.inequality_columns))
        lines.append(f"      missing index on {index.qualified_table} ({columns}){impact}")
    for finding in findings:
        where = f" node {finding.node_id}" if finding.node_id is not None else ""
        lines.append(f"      {finding.severity}: {finding.id}{where}: {finding.message}")
    return lines


def _top_operators(statement: PlanStatement) -> list[PlanNode]:
    """The most expensive operators by own cost (subtree cost minus the children's subtree costs)."""
    costed = [node for node in statement.nodes() if node.estimated_cost is not None]
    return sorted(costed, key=_own_cost, reverse=True)[:TOP_OPERATORS]


def _own_cost(node: PlanNode) -> float:
    children = sum(child.estimated_cost or 0.0 for child in node.children)
    return max((node.estimated_cost or 0.0) - children, 0.0)


# --- diff -----------------------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    engine = engine_name(args.engine) if args.engine else None
    plans: list[Plan] = []
    for path in (args.before, args.after):
        try:
            plans.append(parse_plan_file(path, engine=engine))
        except PlanmonError as exc:
            _print_diff_error(args, path, str(exc))
            return EXIT_PARSE_FAILED
    before, after = plans
    if before.engine != after.engine:
        message = f"cannot diff a {before.engine} plan against a {after.engine} plan"
        _print_diff_error(args, args.after, message)
        return EXIT_PARSE_FAILED
    diffs = diff_plans(before, after)
    if args.json:
        print(json.dumps(_diff_json(args, before, after, diffs), indent=2))
    else:
        print(f"{args.before} -> {args.after} ({after.engine})")
        print("\n".join(diff.as_text() for diff in diffs))
    return EXIT_OK


def _diff_json(args: argparse.Namespace, before: Plan, after: Plan, diffs: list[PlanDiff]) -> dict[str, Any]:
    return {
        "before": args.before,
        "after": args.after,
        "engine": after.engine,
        "error": None,
        "statements": [diff.as_dict() for diff in diffs],
    }


def _print_diff_error(args: argparse.Namespace, path: str, message: str) -> None:
    if args.json:
        body = {"before": args.before, "after": args.after, "engine": None, "error": message}
        print(json.dumps({**body, "statements": []}, indent=2))
    else:
        print(f"{path}: ERROR {message}")
