"""Plan shape fingerprint: one short hash per statement that stays put while the plan stays the same.

What is hashed, node by node in tree order (pre-order with child counts, so the tree is unambiguous):

- the physical and logical operator (``Index Seek``/``Clustered Index Scan``, ``Hash Join``/``Inner``),
- the object touched: schema, table and index, but not the alias (``AS u``), not the database
  (a restored or renamed copy of a database runs the same plan) and not the hex suffix of constraint
  names SQL Server generates (``PK__Users__3214EC07...``; a table variable gets a new one per compile),
- key lookups and scan direction (the ``SHAPE_PROPERTIES`` below),
- whether the operator runs in parallel,
- the predicates' shape: kind plus text with literals, variable names, alias qualifiers, database
  prefixes and optimizer-generated expression numbers (``Expr1004``) removed. SQL Server's own
  QueryPlanHash changes when predicates reference different columns (corpus: ``supr__plan54.sqlplan``
  statements 91 and 92 differ only in one predicate and have different hashes) and stays put when
  only constants or variable names differ (``supr__plan90.sqlplan`` 256 and 349), so the predicate
  shape belongs in the hash and the values do not.

What is ignored: costs, row counts and estimates, actual (run-time) counters and per-thread data,
warnings (spills depend on the run, not the plan), node ids, DOP as a number (a parallel plan run at
DOP 4 or 8 is the same plan), memory grants, statement text, encoding and white space.

``shape_hash`` agrees with SQL Server's QueryPlanHash over the shared plan corpus (83 equal and
74,995 different pairs) except for 11 documented pairs (tests/unit/plans/test_corpus.py):
QueryPlanHash also covers things the showplan XML does not show (NOLOCK hints) or the model does not
keep (output column lists), and generated constraint names; it ignores the comparison operator of
scan and seek predicates (``Id < ?`` versus ``Id = ?``), which planmon keeps on purpose, and treats a
trigger's Inserted Scan and Deleted Scan alike.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable

from planmon.plans.model import ObjectRef, Plan, PlanNode, PlanStatement
from planmon.plans.normalize import strip_literals

HASH_BYTES = 8  # 16 hex characters: collisions between the plans of one query are not a concern

# Engine properties that change how an operator runs, not only how it was costed: a key lookup rather
# than a seek (SQL Server sets Lookup on the seek), backward versus forward scans. Row versus batch mode
# (EstimatedExecutionMode) is left out on purpose: SQL Server writes a different mode for the inner side
# of an adaptive join in the estimated and the actual version of one plan (adaptive_join*.sqlplan).
# PostgreSQL's ON CONFLICT action and arbiter indexes: a plain INSERT ... VALUES and an upsert have the
# same two nodes (ModifyTable over a Values Scan) and differ only there.
SHAPE_PROPERTIES: tuple[str, ...] = (
    "Lookup",
    "ScanDirection",
    "Scan Direction",
    "Conflict Resolution",
    "Conflict Arbiter Indexes",
)
# Values that mean the same in every format an engine writes: PostgreSQL's text EXPLAIN prints no
# direction for a Forward or a NoMovement (hash index) scan, and only the JSON says which.
_SAME_VALUES: dict[str, str] = {"NoMovement": "Forward"}
# Set by a parser on statements whose objects carry a schema only under some EXPLAIN options
# (PostgreSQL names it with VERBOSE only): the schema then stays out of the hash and the diff's names.
SCHEMA_OPTIONAL = "schema_optional"

# Constraint names SQL Server generates for unnamed keys: PK__Orders__3214EC07A1B2C3D4. The hex suffix
# differs per database (dev, prod, a restore) and, for table variables (PK__#B34636D__...), per run.
_SYSTEM_NAMED = re.compile(r"^(PK|UQ)__(.+?)__[0-9A-F]{16}$")

_FIELD = "\x1f"
_NODE = "\x1e"

# SQL Server ScalarString details that are not part of a plan's shape.
_ALIAS_QUALIFIER = re.compile(r"\s+as\s+(?:\[[^\]]*\]\.)*\[[^\]]*\]", re.IGNORECASE)
_DATABASE_PREFIX = re.compile(r"\[[^\]]*\]\.(?=\[[^\]]*\]\.\[[^\]]*\]\.\[[^\]]*\])")
_VARIABLE = re.compile(r"\[@[^\]]*\]|@@?\w+")
# PostgreSQL's $1, $2 of a generic plan stand where a custom (executed) plan has the value's constant
_PARAMETER = re.compile(r"(?<![\w$])\$\d+\b")
_DIGIT = re.compile(r"\d")
_GENERATED_NAME = re.compile(
    r"\b(Expr|Bmk|Chk|Uniq|Act|Ptn|PtnId|RowId|Union|Segment|WindowCount|IsBaseRow|Opt_Bitmap|Bitmap)\d+\b"
)


def shape_hash(statement: PlanStatement) -> str:
    """Hex fingerprint of the statement's operator tree (see the module docstring for what counts)."""
    digest = hashlib.blake2b(digest_size=HASH_BYTES)
    if statement.root is None:
        # Statements without an operator tree (USE, SET, DECLARE, COND) differ only by kind.
        digest.update(f"no-plan{_FIELD}{statement.statement_type or ''}".encode())
        return digest.hexdigest()
    # one update over every token, each followed by the node separator (same bytes as token by token)
    schemas = not statement.properties.get(SCHEMA_OPTIONAL)
    tokens = "".join([f"{token}{_NODE}" for token in shape_tokens(statement.root, schemas=schemas)])
    digest.update(tokens.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def statement_hashes(plan: Plan) -> list[str]:
    """``shape_hash`` of every statement of ``plan``, in document order."""
    return [shape_hash(statement) for statement in plan.statements]


def shape_tokens(root: PlanNode, *, schemas: bool = True) -> Iterable[str]:
    """One canonical string per operator, parents before children: the exact input of the hash.

    Exposed for debugging ("why did the hash change?") and tests; compare two lists to see which
    operator differs. ``schemas=False`` leaves object schemas out (see ``SCHEMA_OPTIONAL``).
    """
    for node in root.walk():
        parallel = "P" if node.parallel else "S"
        parts = [node.physical_op, node.logical_op or "", parallel, _object_key(node.object, schemas)]
        properties = node.properties
        for key in SHAPE_PROPERTIES:
            if key in properties:
                parts.append(f"{key}={_property_shape(properties[key])}")
        for predicate in node.predicates:
            parts.append(f"{predicate.kind}={predicate_shape(predicate.text)}")
        parts.append(str(len(node.children)))
        yield _FIELD.join(parts)


def _property_shape(value: object) -> str:
    """A shape property as one string: JSON lists and their text form (``a, b``) alike."""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    text = str(value)
    return _SAME_VALUES.get(text, text)


def _object_key(ref: ObjectRef | None, schemas: bool = True) -> str:
    if ref is None:
        return ""
    index = _unquote(ref.index or "")
    if index.startswith(("PK__", "UQ__")):  # the only names _SYSTEM_NAMED can match
        index = _SYSTEM_NAMED.sub(_system_name_shape, index)
    schema = _unquote(ref.schema or "") if schemas else ""
    return ".".join((schema, _unquote(ref.table), index))


def _system_name_shape(match: re.Match[str]) -> str:
    owner = "#" if match.group(2).startswith("#") else match.group(2)
    return f"{match.group(1)}__{owner}__*"


@functools.lru_cache(maxsize=8192)  # plans repeat the same predicates; the regexes are the hash's cost
def predicate_shape(text: str) -> str:
    """A predicate's text reduced to its shape: no literals, variables, parameters, aliases or
    generated names."""
    shaped = strip_literals(_PARAMETER.sub("?", text) if "$" in text else text)
    # each substitution runs only when its marker is present: most predicates need none of them
    if " as " in shaped.lower():
        shaped = _ALIAS_QUALIFIER.sub("", shaped)
    if "].[" in shaped:
        shaped = _DATABASE_PREFIX.sub("", shaped)
    if "@" in shaped:
        shaped = _VARIABLE.sub("@?", shaped)
    if _DIGIT.search(shaped):  # _GENERATED_NAME needs one
        shaped = _GENERATED_NAME.sub(lambda match: match.group(1), shaped)
    return shaped


def _unquote(name: str) -> str:
    """``[dbo]`` / ``"public"`` / ```t``` -> the bare name, so quoting style never changes the hash."""
    if len(name) >= 2 and (name[0], name[-1]) in (("[", "]"), ('"', '"'), ("`", "`")):
        return name[1:-1]
    return name
