"""Input hygiene shared by every plan parser: decode bytes safely and cap their size.

Plans arrive as files saved by SSMS (UTF-16 with BOM), DMV output (UTF-8 text that still declares
``encoding="utf-16"``), psql output or JSON from drivers. Decoding happens here once, so parsers only
ever see ``str`` and never trust an encoding declaration.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from planmon.errors import PlanParseError

DEFAULT_MAX_PLAN_BYTES = 64 * 1024 * 1024  # the largest real showplans seen are a few tens of MB
DEFAULT_MAX_DEPTH = 1000  # SQL Server plans can nest deeper than 128 levels; 1000 is far past real ones

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_plan_bytes(
    data: bytes | str,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_PLAN_BYTES,
) -> str:
    """Return the text of a plan document, whatever its encoding, with any BOM removed.

    The byte order mark wins; without one, UTF-16 is recognised by its NUL bytes and anything else
    must be UTF-8. An in-document encoding declaration is ignored on purpose (it is often wrong).
    """
    if isinstance(data, str):
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes, source)
        return data.lstrip("\ufeff")
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes, source)
    encoding, bom_length = sniff_encoding(data)
    return _decode(data[bom_length:], encoding, source)


def sniff_encoding(data: bytes) -> tuple[str, int]:
    """(encoding, length of its byte order mark) of plan bytes: the BOM wins; without one, UTF-16 is
    recognised by its NUL bytes and anything else is taken as UTF-8."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    head = data[:200]
    if len(head) >= 4 and head[1::2].count(0) > len(head[1::2]) // 2:
        return "utf-16-le", 0
    if len(head) >= 4 and head[0::2].count(0) > len(head[0::2]) // 2:
        return "utf-16-be", 0
    return "utf-8", 0


def _decode(data: bytes, encoding: str, source: str | None) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PlanParseError(
            f"the plan is not valid {encoding} text ({exc.reason})",
            source=source,
            position=f"byte {exc.start}",
            hint="save the plan as UTF-8 or UTF-16 text; binary or truncated multi-byte input cannot be read",
        ) from exc


def _too_large(size: int, max_bytes: int, source: str | None) -> PlanParseError:
    return PlanParseError(
        f"the plan is {size:,} bytes, over the {max_bytes:,}-byte limit",
        source=source,
        hint="raise PLANMON_MAX_PLAN_BYTES if this plan is genuine",
    )


@contextmanager
def structure_errors(*, source: str | None, hint: str, max_depth: int) -> Iterator[None]:
    """Turn what malformed plan structures raise while a parser walks them into PlanParseError.

    JSON plans are untrusted: a wrong type where an object was expected surfaces as KeyError,
    TypeError, ValueError or AttributeError, and hostile nesting as RecursionError. Callers only
    ever see PlanParseError, with the parser's hint.
    """
    try:
        yield
    except RecursionError as exc:
        raise PlanParseError(
            "the plan is nested too deeply to read",
            source=source,
            hint=f"plans deeper than {max_depth} operators are refused",
        ) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanParseError(
            f"unexpected plan structure ({type(exc).__name__}: {exc})", source=source, hint=hint
        ) from exc


def json_values(
    text: str,
    *,
    source: str | None,
    hint: str,
    decoder: json.JSONDecoder | None = None,
    original_line: Callable[[int], int] | None = None,
) -> list[Any]:
    """Every JSON value in ``text`` (tools print one document per statement, back to back).

    ``original_line`` maps a line of ``text`` to the line of the input it came from, when a frame
    (psql borders, pgAdmin quotes) was removed first, so errors point into the file as given.
    """
    decoder = decoder or json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return values
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            line = original_line(exc.lineno) if original_line else exc.lineno
            raise PlanParseError(
                f"the JSON plan is malformed or truncated ({exc.msg})",
                source=source,
                position=f"line {line}, column {exc.colno}",
                hint=hint,
            ) from exc
        values.append(value)
