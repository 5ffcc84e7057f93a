"""Literal stripping for predicates and statement text.

Bind values and constants in plan text make one plan look like thousands (a lesson from other
collectors' issue trackers), and they may carry personal data. Every predicate stored in the plan
model goes through :func:`strip_literals`; statement text shown to people goes through it too.
"""

from __future__ import annotations

import re

# Order matters: quoted strings first (they may contain digits), then typed/hex/numeric constants.
# The leading lookahead names every character a literal can start with: at any other position the scan
# moves on after one test instead of trying four branches (the number branch's lookbehind was the cost).
_LITERAL = re.compile(
    r"""
    (?=[N'$\d+\-.])
    (?:
      (?P<string>N?'(?:[^']|'')*')                      # 'text', N'text' with '' escapes
    | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)  # PostgreSQL $$text$$ / $tag$text$tag$
    | (?P<hex>\b0x[0-9A-Fa-f]+\b)                       # 0x1F binary constants
    | (?P<number>(?<![\w@$\]#.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w]))
    )
    """,
    re.VERBOSE | re.DOTALL,
)
# '5'::integer, '2020-01-01'::timestamp without time zone, 'x'::character varying(?)[] -> ?
_CAST_TAIL = re.compile(
    r"""\?::(?:"[^"]+"|[A-Za-z_][\w.]*)
        (?:\s+(?:varying|precision|with(?:out)?\s+time\s+zone))?
        (?:\([?\d\s,]*\))?
        (?:\[\])*""",
    re.VERBOSE,
)
_MAY_HOLD_LITERAL = re.compile(r"[0-9'$]")  # every literal form above contains one of these


def strip_literals(text: str) -> str:
    """Replace string, numeric and binary literals by ``?`` and fold white space.

    Identifiers that contain digits (``t1``, ``[Col2]``, ``@p1``, ``$1``) are kept: only free-standing
    constants are replaced.
    """
    if _MAY_HOLD_LITERAL.search(text):  # most predicates name only columns: skip the costly scan
        text = _LITERAL.sub("?", text)
    if "?::" in text:
        text = _CAST_TAIL.sub("?", text)
    return " ".join(text.split())
