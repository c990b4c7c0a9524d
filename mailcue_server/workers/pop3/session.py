"""The POP3 state machine for one connection: command lines in, reply bytes out.

Owns the protocol logic of RFC 1939 (POP3), RFC 2449 (CAPA and response
codes), RFC 3206 (the AUTH and SYS response codes), RFC 2595 section 4 (STLS)
and RFC 5034 (AUTH) with the PLAIN mechanism of RFC 4616. It does no I/O:
``server.py`` feeds it one line at a time, writes the bytes it returns and acts
on ``Reply.after``; the only thing it awaits is the ``backend.py`` interface.
"""

from __future__ import annotations

import binascii
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailcue_server.errors import NotFound, RateLimited
from mailcue_server.workers.pop3.backend import Maildrop, MaildropInUse, MessageRef, Pop3Backend

__all__ = ["After", "Pop3Error", "Pop3Session", "Reply", "State"]

logger = logging.getLogger(__name__)

IMPLEMENTATION = "MailCue"


class State(enum.Enum):
    """The session states of RFC 1939 section 3."""

    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


# RFC 1939 section 3: commands valid in each state. CAPA is valid in both (RFC 2449
# section 5), STLS only before login (RFC 2595 section 4), AUTH too (RFC 5034 section 4).
_VERBS_BY_STATE = {
    State.AUTHORIZATION: frozenset({"USER", "PASS", "AUTH", "STLS", "CAPA", "QUIT"}),
    State.TRANSACTION: frozenset(
        {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "QUIT"}
    ),
    State.UPDATE: frozenset[str](),
}
_KNOWN_VERBS = frozenset[str]().union(*_VERBS_BY_STATE.values())


class After(enum.Enum):
    """What the connection does once a reply has been written."""

    READ = "read"
    START_TLS = "start_tls"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Reply:
    """The exact octets to send, and what to do next."""

    data: bytes
    after: After = After.READ


class Pop3Error(Exception):
    """An expected failure, answered with ``-ERR`` (RFC 1939 section 3).

    Args:
        text: Human-readable reason; never contains exception details.
        code: Optional RFC 2449 section 8 response code, e.g. ``"AUTH"``.
        close: Close the connection after replying.
    """

    def __init__(self, text: str, code: str | None = None, *, close: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.close = close

    def reply(self) -> Reply:
        """The ``-ERR`` reply for this failure."""
        prefix = f"[{self.code}] " if self.code else ""
        return Reply(_line(f"-ERR {prefix}{self.text}"), After.CLOSE if self.close else After.READ)


class Pop3Session:
    """One client's POP3 conversation.

    Args:
        backend: Checks credentials and hands out maildrops.
        tls_active: The connection is already encrypted (implicit TLS).
        tls_available: STLS can be offered (a context exists for it).
        allow_plaintext_auth: Accept USER/PASS and AUTH PLAIN without TLS.
        max_auth_failures: Close the connection after this many failed logins.
        peer: Client address and port, for logs.
        client_ip: Client address, which the backend counts failed guesses for.
    """

    def __init__(
        self,
        backend: Pop3Backend,
        *,
        tls_active: bool = False,
        tls_available: bool = False,
        allow_plaintext_auth: bool = False,
        max_auth_failures: int = 3,
        peer: str = "-",
        client_ip: str = "",
    ) -> None:
        self._backend = backend
        self._client_ip = client_ip
        self._tls_active = tls_active
        self._tls_available = tls_available
        self._allow_plaintext_auth = allow_plaintext_auth
        self._max_auth_failures = max_auth_failures
        self._peer = peer
        self._state = State.AUTHORIZATION
        self._pending_user: str | None = None
        self._sasl_pending = False
        self._auth_failures = 0
        self._maildrop: Maildrop | None = None
        self._snapshot: tuple[MessageRef, ...] = ()
        self._deleted: set[int] = set()

    @property
    def state(self) -> State:
        """The current RFC 1939 state."""
        return self._state

    def greeting(self) -> Reply:
        """The server greeting sent when the connection opens (RFC 1939 section 4)."""
        return _ok(f"{IMPLEMENTATION} POP3 server ready")

    def line_too_long(self) -> Reply:
        """The reply to a command line over the length limit (RFC 2449 section 4)."""
        self._sasl_pending = False
        return Pop3Error("Line too long").reply()

    def tls_started(self) -> None:
        """Note that STLS negotiation succeeded; forget anything said in the clear."""
        self._tls_active = True
        self._pending_user = None

    async def close(self) -> None:
        """End the session without entering UPDATE: marked messages stay (RFC 1939 section 6)."""
        maildrop, self._maildrop = self._maildrop, None
        if maildrop is not None:
            await maildrop.release()

    async def handle_line(self, line: bytes) -> Reply:
        """Handle one command line (with or without its CRLF) and return the reply.

        This is the per-command boundary: unexpected exceptions are logged here
        and answered with a generic ``-ERR`` that carries no exception text.
        """
        sasl_pending, self._sasl_pending = self._sasl_pending, False
        try:
            text = _decode(line)
            if sasl_pending:
                return await self._sasl_response(text)
            return await self._dispatch(text)
        except Pop3Error as exc:
            return exc.reply()
        except Exception:
            logger.exception("POP3 command failed (peer %s)", self._peer)
            self._pending_user = None
            close = self._state is State.UPDATE
            return Pop3Error("Internal server error", "SYS/TEMP", close=close).reply()

    async def _dispatch(self, text: str) -> Reply:
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb not in _KNOWN_VERBS:
            raise Pop3Error("Unknown command")
        if verb not in _VERBS_BY_STATE[self._state]:
            raise Pop3Error(f"{verb} is not valid in the {self._state.value} state")
        # The verb is one of the whitelisted names above, so this only finds do_* methods.
        handler: Callable[[str], Awaitable[Reply]] = getattr(self, f"do_{verb.lower()}")
        return await handler(arg)

    # -- AUTHORIZATION state ------------------------------------------------------

    async def do_capa(self, arg: str) -> Reply:
        """CAPA (RFC 2449 section 5)."""
        _args(arg, 0, 0)
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self._auth_permitted():
            caps += ["USER", "SASL PLAIN"]
        if self._tls_available and not self._tls_active:
            caps.append("STLS")
        caps.append(f"IMPLEMENTATION {IMPLEMENTATION}")
        return _multiline("Capability list follows", b"".join(_line(c) for c in caps))

    async def do_stls(self, arg: str) -> Reply:
        """STLS (RFC 2595 section 4): the server answers, then negotiates TLS."""
        _args(arg, 0, 0)
        if self._tls_active:
            raise Pop3Error("Already using TLS")
        if not self._tls_available:
            raise Pop3Error("STLS is not available")
        self._pending_user = None
        return Reply(_line("+OK Begin TLS negotiation"), After.START_TLS)

    async def do_user(self, arg: str) -> Reply:
        """USER name (RFC 1939 section 7). Always accepted, so names can't be probed."""
        self._require_auth_permitted()
        name = arg.strip()
        if not name:
            raise Pop3Error("Missing user name")
        self._pending_user = name
        return _ok("Send PASS")

    async def do_pass(self, arg: str) -> Reply:
        """PASS string (RFC 1939 section 7): the password may contain spaces."""
        self._require_auth_permitted()
        username, self._pending_user = self._pending_user, None
        if username is None:
            raise Pop3Error("Send USER first")
        if not arg:
            raise Pop3Error("Missing password")
        return await self._login(username, arg)

    async def do_auth(self, arg: str) -> Reply:
        """AUTH mechanism [initial-response] (RFC 5034 section 4), PLAIN only."""
        parts = _args(arg, 0, 2)
        if not parts:
            # Bare AUTH listing mechanisms predates RFC 5034; older clients still send it.
            return _multiline("Supported mechanisms follow", _line("PLAIN"))
        if parts[0].upper() != "PLAIN":
            raise Pop3Error("Unsupported SASL mechanism")
        self._require_auth_permitted()
        if len(parts) == 1:
            # An empty server challenge is "+ " (RFC 5034 section 4).
            self._sasl_pending = True
            return Reply(b"+ \r\n")
        # "=" stands for an empty initial response (RFC 5034 section 4).
        return await self._auth_plain("" if parts[1] == "=" else parts[1])

    async def _sasl_response(self, text: str) -> Reply:
        if text.strip() == "*":
            raise Pop3Error("Authentication cancelled")
        return await self._auth_plain(text.strip())

    async def _auth_plain(self, response: str) -> Reply:
        message = _b64decode(response)
        # RFC 4616 section 2: [authzid] NUL authcid NUL passwd, all UTF-8.
        try:
            authzid, authcid, password = message.decode("utf-8").split("\0")
        except (UnicodeDecodeError, ValueError):
            raise Pop3Error("Malformed SASL PLAIN response") from None
        if not authcid or not password:
            raise Pop3Error("Malformed SASL PLAIN response")
        if authzid and authzid != authcid:
            raise Pop3Error("Acting as another user is not permitted", "AUTH")
        return await self._login(authcid, password)

    async def _login(self, username: str, password: str) -> Reply:
        try:
            maildrop = await self._backend.authenticate(
                username, password, client_ip=self._client_ip
            )
        except MaildropInUse:
            logger.info("POP3 maildrop of %r is in use (peer %s)", username, self._peer)
            raise Pop3Error("Maildrop is locked by another session", "IN-USE") from None
        except RateLimited:
            # RFC 3206 section 4: SYS/TEMP, a temporary refusal; the password was not checked.
            logger.info("POP3 login refused for %r (peer %s): too many", username, self._peer)
            raise Pop3Error(
                "Too many failed logins from your address; try again later",
                "SYS/TEMP",
                close=self._failed_login(),
            ) from None
        if maildrop is None:
            logger.info("POP3 login failed for %r (peer %s)", username, self._peer)
            raise Pop3Error("Invalid credentials", "AUTH", close=self._failed_login())
        try:
            snapshot = tuple(await maildrop.list_messages())
        except BaseException:
            await maildrop.release()
            raise
        self._maildrop, self._snapshot = maildrop, snapshot
        self._deleted.clear()
        self._state = State.TRANSACTION
        logger.info("POP3 login of %r (peer %s)", username, self._peer)
        return _ok(self._maildrop_summary())

    def _failed_login(self) -> bool:
        """Count a failed login; whether the connection should close now."""
        self._auth_failures += 1
        return self._auth_failures >= self._max_auth_failures

    def _auth_permitted(self) -> bool:
        return self._tls_active or self._allow_plaintext_auth

    def _require_auth_permitted(self) -> None:
        if not self._auth_permitted():
            raise Pop3Error("Plaintext authentication is disabled here, use STLS", "AUTH")

    # -- TRANSACTION state --------------------------------------------------------

    async def do_stat(self, arg: str) -> Reply:
        """STAT (RFC 1939 section 5): count and octets of the undeleted messages."""
        _args(arg, 0, 0)
        visible = self._visible()
        return _ok(f"{len(visible)} {sum(ref.size for _, ref in visible)}")

    async def do_list(self, arg: str) -> Reply:
        """LIST [msg] (RFC 1939 section 5): message sizes in octets."""
        return self._listing(arg, self._maildrop_summary(), lambda ref: str(ref.size))

    async def do_uidl(self, arg: str) -> Reply:
        """UIDL [msg] (RFC 1939 section 7): unique ids, stable across sessions."""
        return self._listing(arg, "Unique-id listing follows", lambda ref: ref.uid)

    def _listing(self, arg: str, first: str, field: Callable[[MessageRef], str]) -> Reply:
        parts = _args(arg, 0, 1)
        if parts:
            number, ref = self._lookup(parts[0])
            return _ok(f"{number} {field(ref)}")
        return _multiline(first, b"".join(_line(f"{n} {field(r)}") for n, r in self._visible()))

    async def do_retr(self, arg: str) -> Reply:
        """RETR msg (RFC 1939 section 5): the whole message, byte-stuffed."""
        (token,) = _args(arg, 1, 1)
        _, ref = self._lookup(token)
        raw = await self._read(ref)
        return _multiline(f"{len(raw)} octets", raw)

    async def do_top(self, arg: str) -> Reply:
        """TOP msg n (RFC 1939 section 7): the header and the first n body lines."""
        token, count = _args(arg, 2, 2)
        _, ref = self._lookup(token)
        if not (count.isascii() and count.isdigit()):
            raise Pop3Error("Invalid line count")
        raw = await self._read(ref)
        return _multiline("Top of message follows", _top(raw, int(count)))

    async def do_dele(self, arg: str) -> Reply:
        """DELE msg (RFC 1939 section 5): mark only; removal happens at QUIT."""
        (token,) = _args(arg, 1, 1)
        number, _ = self._lookup(token)
        self._deleted.add(number - 1)
        return _ok(f"Message {number} deleted")

    async def do_noop(self, arg: str) -> Reply:
        """NOOP (RFC 1939 section 5)."""
        _args(arg, 0, 0)
        return _ok()

    async def do_rset(self, arg: str) -> Reply:
        """RSET (RFC 1939 section 5): unmark every message marked as deleted."""
        _args(arg, 0, 0)
        self._deleted.clear()
        return _ok(self._maildrop_summary())

    async def do_quit(self, arg: str) -> Reply:
        """QUIT (RFC 1939 sections 4 and 6): in TRANSACTION, enter UPDATE and expunge."""
        if self._state is State.AUTHORIZATION:
            return Reply(_line(f"+OK {IMPLEMENTATION} POP3 server signing off"), After.CLOSE)
        self._state = State.UPDATE
        maildrop, self._maildrop = self._held(), None
        uids = [ref.uid for index, ref in enumerate(self._snapshot) if index in self._deleted]
        try:
            if uids:
                await maildrop.delete(uids)
        except Exception:
            # RFC 1939 section 6 has its own reply for this case, so handle it here.
            logger.exception("POP3 UPDATE failed to delete %d messages", len(uids))
            raise Pop3Error("Some deleted messages not removed", "SYS/TEMP", close=True) from None
        finally:
            await maildrop.release()
        left = len(self._snapshot) - len(uids)
        return Reply(_line(f"+OK Signing off ({left} messages left)"), After.CLOSE)

    def _visible(self) -> list[tuple[int, MessageRef]]:
        pairs = enumerate(self._snapshot, 1)
        return [(number, ref) for number, ref in pairs if number - 1 not in self._deleted]

    def _maildrop_summary(self) -> str:
        visible = self._visible()
        octets = sum(ref.size for _, ref in visible)
        return f"Maildrop has {len(visible)} messages ({octets} octets)"

    def _lookup(self, token: str) -> tuple[int, MessageRef]:
        # Message numbers are 1-based and stay fixed for the session (RFC 1939 section 4).
        if not (token.isascii() and token.isdigit()) or len(token) > 10:
            raise Pop3Error("Invalid message number")
        number = int(token)
        if not 1 <= number <= len(self._snapshot):
            raise Pop3Error("No such message")
        if number - 1 in self._deleted:
            raise Pop3Error(f"Message {number} already deleted")
        return number, self._snapshot[number - 1]

    def _held(self) -> Maildrop:
        if self._maildrop is None:
            raise RuntimeError("TRANSACTION state without a maildrop")
        return self._maildrop

    async def _read(self, ref: MessageRef) -> bytes:
        try:
            return await self._held().read(ref.uid)
        except NotFound:
            raise Pop3Error("Message is no longer available") from None


def _decode(line: bytes) -> str:
    try:
        return line.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        raise Pop3Error("Command is not valid UTF-8") from None


def _b64decode(text: str) -> bytes:
    # RFC 5034 section 4: a response that is not valid base64 is rejected. Strict mode
    # still lets excess "=" after a whole group through, hence the length check.
    if len(text) % 4 == 0:
        with contextlib.suppress(binascii.Error, ValueError):
            return binascii.a2b_base64(text, strict_mode=True)
    raise Pop3Error("Invalid base64 in SASL response")


def _args(arg: str, least: int, most: int) -> list[str]:
    parts = arg.split()
    if len(parts) < least:
        raise Pop3Error("Missing argument")
    if len(parts) > most:
        raise Pop3Error("Too many arguments")
    return parts


def _line(text: str) -> bytes:
    return text.encode("utf-8") + b"\r\n"


def _ok(text: str = "") -> Reply:
    return Reply(_line(f"+OK {text}" if text else "+OK"))


def _multiline(first: str, body: bytes) -> Reply:
    """A multi-line reply (RFC 1939 section 3): byte-stuffed, ended by ``.`` CRLF."""
    # Stuff after every LF, not only CRLF: clients split lines on LF alone.
    if body.startswith(b"."):
        body = b"." + body
    body = body.replace(b"\n.", b"\n..")
    if body and not body.endswith(b"\n"):
        body += b"\r\n"
    return Reply(_line(f"+OK {first}") + body + b".\r\n")


def _top(raw: bytes, count: int) -> bytes:
    """The header section, the blank line, then ``count`` body lines (RFC 1939 section 7)."""
    end = _header_end(raw)
    for _ in range(count):
        if end >= len(raw):
            break
        newline = raw.find(b"\n", end)
        end = len(raw) if newline < 0 else newline + 1
    return raw[:end]


def _header_end(raw: bytes) -> int:
    """Offset just past the empty line that ends the header section, or the end."""
    start = 0
    while start < len(raw):
        newline = raw.find(b"\n", start)
        if newline < 0:
            break
        if raw[start:newline] in (b"", b"\r"):
            return newline + 1
        start = newline + 1
    return len(raw)
