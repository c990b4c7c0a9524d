"""FETCH ENVELOPE and BODYSTRUCTURE on the wire (RFC 3501 section 7.4.2), from raw bytes (pure).

Both are built from the message's own header octets, never from a decoded
copy, because that is what clients expect:

- Subjects and display names keep their RFC 2047 encoded-words; raw 8-bit
  header bytes go out as literals, since IMAP4rev1 quoted strings are 7-bit.
- The Date field is the header's text, not a reformatted date.
- A missing display name is NIL, not ``""``; Sender and Reply-To default to
  From (RFC 3501 section 7.4.2, ENVELOPE).
- Addresses are ``(name adl mailbox host)``: a source route (``<@a,@b:u@d>``,
  RFC 5322 section 4.4) goes in adl; a group opens with
  ``(NIL NIL "name" NIL)`` and closes with ``(NIL NIL NIL NIL)``; a comment
  names an address that has no display name but never makes one up.
- A part's size and line count cover its body only, never its MIME header,
  and exclude the line break that belongs to the next boundary
  (:mod:`mailcue_server.mail.tree`). Lines are counted as line feeds, as Dovecot does.
- Dispositions are ``("attachment" ("filename" "a.pdf"))`` lists.
"""

from __future__ import annotations

import re

from mailcue_server.mail.tree import Header, Part, split_params

NIL = b"NIL"
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]{0,1000}")
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
_SPACES = re.compile(rb"\s+")
_SINGLE_FIELDS = (b"date", b"subject")
_ADDRESS_FIELDS = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")


def string(value: bytes) -> bytes:
    """An IMAP string: quoted when 7-bit and short, else a literal (RFC 3501 section 4.3)."""
    if _QUOTABLE.fullmatch(value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n%b" % (len(value), value)


def nstring(value: bytes | None) -> bytes:
    return NIL if value is None else string(value)


def envelope(header: Header) -> bytes:
    """The ENVELOPE of a message header."""
    date, subject = (header.first(name) for name in _SINGLE_FIELDS)
    lists = {name: address_list(header.first(name)) for name in _ADDRESS_FIELDS}
    sender = lists[b"sender"] or lists[b"from"]
    reply_to = lists[b"reply-to"] or lists[b"from"]
    items = [
        nstring(date),
        nstring(subject),
        _addresses(lists[b"from"]),
        _addresses(sender),
        _addresses(reply_to),
        _addresses(lists[b"to"]),
        _addresses(lists[b"cc"]),
        _addresses(lists[b"bcc"]),
        nstring(header.first(b"in-reply-to")),
        nstring(header.first(b"message-id")),
    ]
    return b"(" + b" ".join(items) + b")"


def body_structure(part: Part, *, extended: bool) -> bytes:
    """BODYSTRUCTURE (``extended``) or the short form FETCH BODY returns."""
    raw = part.header.raw
    if part.is_multipart:
        items = [b"".join(body_structure(child, extended=extended) for child in part.children)]
        items.append(string(part.subtype))
        if extended:
            items += [_params(part.params), *_extension(part.header)]
        return b"(" + b" ".join(items) + b")"
    encoding = part.header.first(b"content-transfer-encoding")
    items = [
        string(part.maintype),
        string(part.subtype),
        _params(part.params),
        nstring(part.header.first(b"content-id")),
        nstring(part.header.first(b"content-description")),
        string(encoding.upper() if encoding else b"7BIT"),
        b"%d" % (part.end - part.body_start),
    ]
    lines = b"%d" % raw.count(b"\n", part.body_start, part.end)
    if part.message is not None:
        items += [
            envelope(part.message.header),
            body_structure(part.message, extended=extended),
            lines,
        ]
    elif part.maintype == b"text":
        items.append(lines)
    if extended:
        items += [nstring(part.header.first(b"content-md5")), *_extension(part.header)]
    return b"(" + b" ".join(items) + b")"


def _extension(header: Header) -> list[bytes]:
    """body-fld-dsp, body-fld-lang and body-fld-loc."""
    disposition = header.first(b"content-disposition")
    if disposition:
        kind, params = split_params(disposition)
        dsp = b"(" + string(kind) + b" " + _params(params) + b")"
    else:
        dsp = NIL
    language = header.first(b"content-language")
    tags = [tag.strip() for tag in (language or b"").split(b",") if tag.strip()]
    if not tags:
        lang = NIL
    elif len(tags) == 1:
        lang = string(tags[0])
    else:
        lang = b"(" + b" ".join(string(tag) for tag in tags) + b")"
    return [dsp, lang, nstring(header.first(b"content-location"))]


def _params(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(string(name) + b" " + string(value) for name, value in params) + b")"


# --- addresses (RFC 5322 section 3.4) ---------------------------------------------------------

Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]
"""``(display name, source route, mailbox, host)`` as RFC 3501 section 7.4.2 orders them;
a group opens with ``(None, None, name, None)`` and closes with ``(None, None, None, None)``."""

_GROUP_END: Address = (None, None, None, None)
_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)", re.DOTALL)


def address_list(value: bytes | None) -> list[Address]:
    """Parse an address-list field, keeping display names as written (encoded-words too)."""
    if not value:
        return []
    result: list[Address] = []
    for group, mailboxes in _groups(value):
        if group is not None:
            result.append((None, None, group, None))
        result.extend(mailboxes)
        if group is not None:
            result.append(_GROUP_END)
    return result


def is_group_marker(address: Address) -> bool:
    """Whether ``address`` opens or closes a group rather than naming a mailbox."""
    return address[3] is None


def _addresses(addresses: list[Address]) -> bytes:
    if not addresses:
        return NIL
    return b"(" + b"".join(_address(*address) for address in addresses) + b")"


def _address(
    name: bytes | None, route: bytes | None, mailbox: bytes | None, host: bytes | None
) -> bytes:
    return b"(%b %b %b %b)" % (nstring(name), nstring(route), nstring(mailbox), nstring(host))


def _groups(value: bytes) -> list[tuple[bytes | None, list[Address]]]:
    """Split an address list into groups (``None`` for ungrouped mailboxes)."""
    out: list[tuple[bytes | None, list[Address]]] = []
    words: list[bytes] = []
    comments: list[bytes] = []
    angle: bytes | None = None
    group: tuple[bytes | None, list[Address]] | None = None

    def finish_mailbox() -> None:
        nonlocal angle
        mailbox = _mailbox(words, comments, angle)
        if mailbox is not None:
            target = group[1] if group is not None else _ungrouped(out)
            target.append(mailbox)
        words.clear()
        comments.clear()
        angle = None

    for kind, token in _tokens(value):
        if kind == b"<":
            angle = token
        elif kind == b"(":
            comments.append(token)
        elif kind == b":" and group is None and angle is None:
            group = (_phrase(words), [])
            out.append(group)
            words.clear()
            comments.clear()
        elif kind == b";" and group is not None:
            finish_mailbox()
            group = None
        elif kind == b",":
            finish_mailbox()
        else:
            words.append(token if kind == b"w" else b'"' + token + b'"')
    finish_mailbox()
    return out


def _ungrouped(out: list[tuple[bytes | None, list[Address]]]) -> list[Address]:
    if not out or out[-1][0] is not None:
        out.append((None, []))
    return out[-1][1]


def _mailbox(words: list[bytes], comments: list[bytes], angle: bytes | None) -> Address | None:
    route: bytes | None = None
    if angle is not None:
        head, colon, spec = angle.rpartition(b":")
        route = head if colon and head.startswith(b"@") else None  # obs-route (RFC 5322 4.4)
        name = _phrase(words)
    else:
        spec = b"".join(words)
        name = None
    if name is None and comments:
        name = _SPACES.sub(b" ", comments[-1]).strip() or None
    spec = spec.strip()
    if not spec:
        return None  # a comment or a phrase alone is not an address
    local, at, domain = spec.rpartition(b"@")
    if not at:
        return (name, route, spec, b"")
    return (name, route, local, domain)


def _phrase(words: list[bytes]) -> bytes | None:
    """A display name: words joined by single spaces, quoted strings unquoted."""
    text = b" ".join(
        _QUOTED_PAIR.sub(rb"\1", word[1:-1]) if word.startswith(b'"') else word for word in words
    )
    return text.strip() or None


def _tokens(value: bytes) -> list[tuple[bytes, bytes]]:
    """Tokens: ``w`` words, ``q`` quoted strings, ``(`` comments, ``<`` angle addresses,
    and the specials ``,`` ``:`` ``;``."""
    tokens: list[tuple[bytes, bytes]] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i : i + 1]
        if char.isspace():
            i += 1
        elif char == b'"':
            end = _closing(value, i + 1, b'"')
            tokens.append((b"q", value[i + 1 : end]))
            i = end + 1
        elif char == b"(":
            depth, j = 1, i + 1
            while j < n and depth:
                c = value[j : j + 1]
                j += 2 if c == b"\\" else 1
                depth += {b"(": 1, b")": -1}.get(c, 0)
            tokens.append((b"(", _QUOTED_PAIR.sub(rb"\1", value[i + 1 : j - 1])))
            i = j
        elif char == b"<":
            end = value.find(b">", i + 1)
            end = n if end < 0 else end
            tokens.append((b"<", _SPACES.sub(b"", _uncomment(value[i + 1 : end]))))
            i = end + 1
        elif char in (b",", b":", b";"):
            tokens.append((char, char))
            i += 1
        else:
            j = i
            while j < n and value[j : j + 1] not in (b'"', b"(", b"<", b",", b":", b";"):
                if value[j : j + 1].isspace():
                    break
                j += 1
            tokens.append((b"w", value[i:j]))
            i = j
    return tokens


def _uncomment(value: bytes) -> bytes:
    """Remove comments (innermost first, so nested ones go too) from an angle address."""
    while b"(" in value:
        shorter = _COMMENT.sub(b"", value)
        if shorter == value:
            return value
        value = shorter
    return value


def _closing(value: bytes, start: int, quote: bytes) -> int:
    i = start
    while i < len(value):
        char = value[i : i + 1]
        if char == b"\\":
            i += 2
            continue
        if char == quote:
            return i
        i += 1
    return len(value)
