"""The stdlib's full parse of a message, guarded so malformed or hostile mail cannot break it.

The structure of a message, as byte ranges, is :mod:`.tree`; this decoded
parse serves what needs the stdlib's decoding and defect report: the detail
and downloads of :mod:`.mime` and the PGP readers. Both number parts as IMAP
does, and ``tests/mail/test_tree.py`` checks they agree.

The stdlib's ``BytesParser`` with ``policy.default`` does the parsing (RFC
5322, RFC 2045-2047, RFC 2231, raw UTF-8 headers per RFC 6532). Two guards
sit around it: header values its structured parsers crash on are kept as
text, and mail whose structure would take the parser seconds or overflow
the stack is read as headers plus one text body.
"""

from __future__ import annotations

import re
from email import errors, policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import Message
from email.parser import BytesParser
from typing import Any

from mailcue_server.mail.parts import MAX_DEPTH

MAX_PARTS = 1000
"""Parts read per message; the rest are named in one defect."""

_PARSE_DEPTH_LIMIT = 4 * MAX_DEPTH  # about 0.25 s of parsing at worst
_PARSE_PARTS_LIMIT = 2 * MAX_PARTS  # about 2 s
_BOUNDARY_PARAM = re.compile(rb'boundary\*?0?\*?[ \t]*=[ \t]*"?([^"\s;]+)', re.IGNORECASE)
_DELIMITER_LINE = re.compile(rb"^--(\S+?)(--)?[ \t]*\r?$", re.MULTILINE)
PROBLEMS = {  # why a message was read as headers and one text body
    "NestingTooDeep": "multiparts nest too deep to read; the body is shown as text",
    "TooManyParts": "too many parts to read; the body is shown as text",
    "ParserFailed": "the MIME structure could not be read; the body is shown as text",
}


class _KeptAsText(UnstructuredHeader):
    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        super().parse(value, kwds)
        kwds["defects"].append(errors.InvalidHeaderDefect("unparsable; kept as plain text"))


class _KeptAsTextHeader(_KeptAsText, BaseHeader):
    """What the registry builds for a header: the parsing class mixed with ``BaseHeader``."""


class _TolerantHeaders(HeaderRegistry):
    """The standard header classes, except that a header their parser crashes on stays text.

    The structured parsers still raise ``IndexError`` on some malformed values,
    and ``BytesParser`` itself reads the ``Content-Type`` while it splits parts,
    so one bad header would lose the whole message:
    https://github.com/python/cpython/issues/151857 (``name*`` parameter),
    https://github.com/python/cpython/issues/148518 (``To: "``).
    """

    def __call__(self, name: str, value: Any) -> BaseHeader:
        try:
            return super().__call__(name, value)
        except Exception:  # any parser bug, as above: keep the text, note a defect
            return _KeptAsTextHeader(name, value)


_POLICY = policy.default.clone(header_factory=_TolerantHeaders())
_PARSER = BytesParser(policy=_POLICY)


def parse(raw: bytes) -> tuple[Message, str | None]:
    """The full parse; the headers alone when the structure is absurd or the parser gives up.

    The feedparser recurses once per multipart level, its time grows with the
    square of the depth (1.5 s for 900 levels, measured here on Python 3.11)
    and it raises ``RecursionError`` near a thousand; it reads about a
    thousand parts a second. Such mail is not handed to it.

    Args:
        raw: The message exactly as stored.

    Returns:
        The root of the tree, and ``None`` or the :data:`PROBLEMS` key saying
        why only the headers were parsed (the body is then one text payload).
    """
    problem = _structure_problem(raw)
    if problem is None:
        try:
            return _PARSER.parsebytes(raw), None
        except Exception as exc:  # the message must still be shown; say why its body is not
            problem = "NestingTooDeep" if isinstance(exc, RecursionError) else "ParserFailed"
    return _PARSER.parsebytes(raw, headersonly=True), problem


def _structure_problem(raw: bytes) -> str | None:
    """Too many parts or too deep a nesting for the parser, from a scan of the bytes.

    Ordinary mail costs one ``count``. Otherwise: delimiter lines of declared
    boundaries are the parts (RFC 2046 section 5.1.1), and declarations not
    yet followed by a close delimiter are the depth (siblings close before the
    next opens; nested multiparts stay open).
    """
    declared = [(m.start(), m.group(1)) for m in _BOUNDARY_PARAM.finditer(raw)]
    if len(declared) <= _PARSE_DEPTH_LIMIT and raw.count(b"\n--") <= _PARSE_PARTS_LIMIT:
        return None
    names = {name for _, name in declared}
    delimiters = [m for m in _DELIMITER_LINE.finditer(raw) if m.group(1) in names]
    closes = [(m.start(), -1) for m in delimiters if m.group(2)]
    depth = deepest = 0
    for _, step in sorted([(at, 1) for at, _ in declared] + closes):
        depth = max(0, depth + step)
        deepest = max(deepest, depth)
    if deepest > _PARSE_DEPTH_LIMIT:
        return "NestingTooDeep"
    return "TooManyParts" if len(delimiters) > _PARSE_PARTS_LIMIT else None
