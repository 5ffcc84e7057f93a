"""Safe XML parsing for plan documents: no DTDs, no entities, no network, capped size and depth.

Plan XML comes from monitored servers and from files people upload, so it is untrusted input. Any
document type declaration is refused before lxml sees the text (XXE and "billion laughs" need one),
the parser itself never loads or resolves anything, and errors carry a line and column.
"""

from __future__ import annotations

import re

from lxml import etree

from planmon.errors import PlanParseError
from planmon.plans.hygiene import DEFAULT_MAX_DEPTH, DEFAULT_MAX_PLAN_BYTES, decode_plan_bytes, sniff_encoding

# libxml2 refuses documents nested deeper than 256 levels unless XML_PARSE_HUGE is set (then 2048).
# Real showplans can nest deeper than 256 (long chains of joins or scalar expressions), so a document
# that hits 256 is parsed again with huge_tree when the caller allows more; every other huge-mode
# relaxation (entity amplification, text node size) is moot here: DTDs are refused and the size is
# capped beforehand.
_LIBXML_DEFAULT_MAX_DEPTH = 256
_LIBXML_HUGE_MAX_DEPTH = 2048

# The XML declaration (possibly wrong about the encoding: DMV text saved to a file says utf-16).
_SPACES = re.compile(r"\s*")
_XML_DECLARATION = re.compile(r"\s*<\?xml\b[^>]*\?>")
_POSITION_SUFFIX = re.compile(r",\s*line \d+, column \d+\s*$")  # lxml repeats the position in its message


def parse_xml(
    data: bytes | str,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_PLAN_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> etree._Element:
    """Decode, vet and parse a plan document; return its root element or raise PlanParseError."""
    if isinstance(data, bytes):
        root = _parse_bytes_as_they_are(data, max_bytes=max_bytes, max_depth=max_depth)
        if root is not None:
            return root
    text = decode_plan_bytes(data, source=source, max_bytes=max_bytes)
    text = blank_xml_declaration(text)
    refuse_dtd(text, source=source)
    encoded = text.encode("utf-8")
    # libxml2's own depth limit (256 levels without huge mode) enforces the cap for free on every real
    # plan; only a document deeper than that is parsed again in huge mode and its depth checked here.
    try:
        root = _fromstring(encoded, huge=False)
    except etree.XMLSyntaxError as exc:
        if max_depth <= _LIBXML_DEFAULT_MAX_DEPTH or not _is_depth_error(exc):
            raise syntax_error(exc, text, source=source, max_depth=max_depth) from exc
        try:
            root = _fromstring(encoded, huge=True)
        except etree.XMLSyntaxError as huge_exc:
            raise syntax_error(huge_exc, text, source=source, max_depth=max_depth) from huge_exc
        check_depth(root, max_depth, source=source)
        return root
    if max_depth < _LIBXML_DEFAULT_MAX_DEPTH:
        check_depth(root, max_depth, source=source)
    return root


_LIBXML_ENCODINGS = {"utf-8": "UTF-8", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE"}  # libxml2's names
_PROLOG_BYTES = 64 * 1024  # the prolog (declaration, comments) of any real plan ends long before this


def _parse_bytes_as_they_are(data: bytes, *, max_bytes: int, max_depth: int) -> etree._Element | None:
    """The fast path for well-formed bytes: no decode and re-encode of the whole document.

    The encoding is forced from the byte order mark (or the UTF-16 NUL pattern), which overrides a
    wrong in-document declaration just as decoding first would. The prolog is vetted for a DTD as on
    the text path. None means "take the text path": it re-does the work and produces the precise
    error (size, encoding, DTD, syntax with position, truncation, depth).
    """
    if len(data) > max_bytes or max_depth < _LIBXML_DEFAULT_MAX_DEPTH:
        return None
    encoding, bom_length = sniff_encoding(data)
    head = data[bom_length : bom_length + _PROLOG_BYTES]
    if encoding.startswith("utf-16"):
        head = head[: len(head) // 2 * 2]
    head_text = head.decode(encoding, errors="replace")
    if not _prolog_ends_within(head_text) or _declares_dtd(head_text):
        return None
    try:
        # the byte order mark stays: libxml2 skips it under a forced encoding, and slicing it off would
        # copy the whole document
        return etree.fromstring(data, _parser(False, encoding=_LIBXML_ENCODINGS[encoding]))
    except etree.XMLSyntaxError:
        return None


def _prolog_ends_within(text: str) -> bool:
    """True when the root element starts inside ``text`` (so the whole prolog was seen)."""
    offset: int | None = _skip_spaces(text, 0)
    while offset is not None and text.startswith(("<?", "<!"), offset):
        offset = _after_prolog_markup(text, offset)
    return offset is not None and text.startswith("<", offset)


def _after_prolog_markup(text: str, offset: int) -> int | None:
    terminator = "-->" if text.startswith("<!--", offset) else "?>" if text.startswith("<?", offset) else None
    if terminator is None:
        return None
    end = text.find(terminator, offset + 2)
    return None if end < 0 else _skip_spaces(text, end + len(terminator))


def _declares_dtd(text: str) -> bool:
    try:
        refuse_dtd(text)
    except PlanParseError:
        return True
    return False


def _fromstring(encoded: bytes, *, huge: bool) -> etree._Element:
    """Parse with recover=False: any error raises, so a root element always comes back."""
    return etree.fromstring(encoded, _parser(huge))


def _is_depth_error(exc: etree.XMLSyntaxError) -> bool:
    """True for libxml2's "Excessive depth in document" error."""
    return "excessive depth" in (exc.msg or str(exc)).lower()


def blank_xml_declaration(text: str) -> str:
    """Replace the XML declaration by spaces of the same length, so line/column positions still match.

    The declaration's encoding is often wrong (DMV output saved as UTF-8 says utf-16) and lxml refuses
    a declared encoding on already-decoded text, so the bytes' real encoding (decoded before) wins.
    """
    match = _XML_DECLARATION.match(text)
    if match is None:
        return text
    declaration = match.group(0)
    blanked = "".join(ch if ch in "\r\n" else " " for ch in declaration)
    return blanked + text[match.end() :]


def refuse_dtd(text: str, *, source: str | None = None) -> None:
    """Reject any document that declares a DTD, before it is parsed (XXE, billion laughs).

    A DOCTYPE (and so any ENTITY declaration) can only stand in the prolog, before the root element;
    the prolog is walked exactly (comments and processing instructions skipped), so the check costs
    nothing on large plans and cannot be fooled by markup-like text inside a comment.
    """
    offset = _prolog_markup(text)
    while offset is not None:
        if text.startswith("<!DOCTYPE", offset) or text.startswith("<!ENTITY", offset):
            raise PlanParseError(
                "the document declares a DTD (<!DOCTYPE>); plan documents never do and it is not processed",
                source=source,
                position=_position(text, offset),
                hint="submit the plan XML as SQL Server produced it, without a DTD",
            )
        offset = _next_prolog_markup(text, offset)


def _prolog_markup(text: str) -> int | None:
    """Offset of the first markup in the document if it is prolog markup (``<?`` or ``<!``), else None."""
    offset = _skip_spaces(text, 0)
    return offset if text.startswith(("<?", "<!"), offset) else None


def _next_prolog_markup(text: str, offset: int) -> int | None:
    """Skip one comment or processing instruction; the offset of the next prolog markup, else None."""
    terminator = "-->" if text.startswith("<!--", offset) else "?>" if text.startswith("<?", offset) else None
    if terminator is None:
        return None  # other "<!" markup: libxml2 rejects it as not well-formed
    end = text.find(terminator, offset + 2)
    if end < 0:
        return None
    following = _skip_spaces(text, end + len(terminator))
    return following if text.startswith(("<?", "<!"), following) else None


def _skip_spaces(text: str, offset: int) -> int:
    """Offset of the first non-space character at or after ``offset`` (no copy of a large text)."""
    match = _SPACES.match(text, offset)
    return match.end() if match else offset


def check_depth(root: etree._Element, max_depth: int, *, source: str | None = None) -> None:
    """Raise PlanParseError when elements nest deeper than ``max_depth`` levels (the root is level 1).

    The probe is one XPath of ``max_depth + 1`` steps, evaluated in C; ``parse_xml`` only needs it for
    caps below libxml2's own 256 levels or for documents deeper than those.
    """
    if _deeper_than(max_depth)(root):
        raise _too_deep(max_depth, source, position=None)


def syntax_error(
    exc: etree.XMLSyntaxError, text: str, *, source: str | None = None, max_depth: int = DEFAULT_MAX_DEPTH
) -> PlanParseError:
    """Turn an lxml syntax error into a PlanParseError with a position, saying so when input is cut off."""
    line, column = exc.position if exc.position else (0, 0)
    position = f"line {line}, column {column}" if line else None
    detail = _POSITION_SUFFIX.sub("", (exc.msg or str(exc)).strip())
    if _is_depth_error(exc):
        return _too_deep(_effective_depth_limit(max_depth), source, position=position)
    if line and _looks_truncated(detail, text, line, column):
        end_line, end_column = _end_position(text)
        return PlanParseError(
            f"the document ends at line {end_line}, column {end_column} before it is complete and looks"
            f" truncated ({detail})",
            source=source,
            position=position,
            hint="capture the whole plan: SSMS grids and some drivers cut long XML; read it with"
            " sys.dm_exec_text_query_plan or as nvarchar(max)",
        )
    return PlanParseError(
        f"the document is not well-formed XML ({detail})",
        source=source,
        position=position,
        hint="check that the file holds showplan XML exactly as SQL Server produced it",
    )


def _parser(huge: bool, *, encoding: str | None = None) -> etree.XMLParser:
    """A fresh parser per document (lxml parsers must not be shared between threads)."""
    return etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=huge,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,  # showplan has no text content: indentation nodes only cost time
        collect_ids=False,
        recover=False,
    )


def _deeper_than(max_depth: int) -> etree.XPath:
    """An XPath that is true when an element sits at level ``max_depth + 1``; evaluated in C, O(elements).

    Compiled per call (a few microseconds) rather than cached, so no XPath object is shared by threads.
    """
    steps = "/".join(["*"] * (max_depth + 1))
    return etree.XPath(f"boolean(/{steps})")


def _effective_depth_limit(max_depth: int) -> int:
    """The depth limit that really applies: libxml2 stops at 2048 levels even in huge mode."""
    return min(max_depth, _LIBXML_HUGE_MAX_DEPTH) if max_depth > _LIBXML_DEFAULT_MAX_DEPTH else max_depth


def _too_deep(max_depth: int, source: str | None, position: str | None) -> PlanParseError:
    """The error for a document nested deeper than the cap."""
    return PlanParseError(
        f"the document nests elements deeper than {max_depth} levels",
        source=source,
        position=position,
        hint="raise max_depth if this plan is genuine; SQL Server plans rarely pass a few hundred levels",
    )


def _looks_truncated(detail: str, text: str, line: int, column: int) -> bool:
    """True when libxml2 stopped at the very end of the input (a cut-off document), not in the middle."""
    lowered = detail.lower()
    if "premature end" in lowered:
        return True
    if "mismatch" in lowered:  # a wrong end tag at the end is a broken document, not a short one
        return False
    end_line, end_column = _end_position(text)
    return line > end_line or (line == end_line and column >= end_column - 1)


def _end_position(text: str) -> tuple[int, int]:
    """Line and column (1-based) just past the last character of the document."""
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return line, column


def _position(text: str, offset: int) -> str:
    """``line L, column C`` (1-based) of a character offset in ``text``."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"
