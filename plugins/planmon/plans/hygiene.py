"""Input hygiene shared by every plan parser: decode bytes safely and cap their size.

Plans arrive as files saved by SSMS (UTF-16 with BOM), DMV output (UTF-8 text that still declares
``encoding="utf-16"``), psql output or JSON from drivers. Decoding happens here once, so parsers only
ever see ``str`` and never trust an encoding declaration.
"""

from __future__ import annotations

import codecs

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
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom) :], encoding, source)
    head = data[:200]
    if head[1::2].count(0) > len(head[1::2]) // 2 and len(head) >= 4:
        return _decode(data, "utf-16-le", source)
    if head[0::2].count(0) > len(head[0::2]) // 2 and len(head) >= 4:
        return _decode(data, "utf-16-be", source)
    return _decode(data, "utf-8", source)


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
