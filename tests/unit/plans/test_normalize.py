from __future__ import annotations

import pytest

from planmon.plans.normalize import strip_literals


@pytest.mark.parametrize(
    ("raw", "stripped"),
    [
        ("a = '5'::integer AND b > 3.5e2", "a = ? AND b > ?"),
        ("(created_at > '2020-01-01'::timestamp without time zone)", "(created_at > ?)"),
        ("(name = 'x'::character varying(20))", "(name = ?)"),
        ("(tags @> '{a}'::text[])", "(tags @> ?)"),
        ("x = ?::text", "x = ?"),
        ("[t1].[c2] = @p1 AND [Col2] = N'it''s'", "[t1].[c2] = @p1 AND [Col2] = ?"),
        ("id = $1 AND v = 0x1F", "id = $1 AND v = ?"),
        ("body = $$ 42 $$", "body = ?"),
        ("x\t\n  >=  -7", "x >= ?"),
        ("[Expr1004] = [Users].[Id]", "[Expr1004] = [Users].[Id]"),
    ],
)
def test_literals_are_replaced_and_identifiers_kept(raw: str, stripped: str) -> None:
    assert strip_literals(raw) == stripped


def test_stripping_is_idempotent() -> None:
    text = "a = '5'::integer AND b IN (1, 2, 3) AND c LIKE N'%x%'"
    once = strip_literals(text)
    assert strip_literals(once) == once
