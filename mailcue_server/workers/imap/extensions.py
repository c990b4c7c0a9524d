"""What pymap 0.36.7 lacks, and the one place that reaches into its connection state.

- Commands: NAMESPACE (RFC 2342), ENABLE (RFC 5161) and UNSELECT (RFC 3691).
- A LOGIN that takes ``*`` and ``%`` in unquoted arguments, as Dovecot does:
  the master login ``<address>*<admin>`` and passwords with those characters
  arrive that way from Python's imaplib, which quotes neither.
- FETCH written by ``fetch.py`` instead of pymap's slower generic renderer.
- :class:`ImapState`, a pymap ``ConnectionState`` that
  - decides plaintext LOGIN by our configuration alone (pymap also allows it
    to any client on localhost),
  - maps our domain errors to tagged NO responses with RFC 5530 codes and
    turns an unexpected failure into ``NO [SERVERBUG]`` instead of a dropped
    connection (a command is a request boundary, STYLE rule 24),
  - answers an APPEND over the size limit with ``NO [TOOBIG]`` (RFC 7889),
  - closes the connection after repeated failed logins,
  - lets CLOSE of an EXAMINEd mailbox succeed without expunging (RFC 3501
    section 6.4.2; pymap answers it with NO).

pymap keeps the selected mailbox in ``ConnectionState._selected``; UNSELECT
and the read-only CLOSE must clear it, so this module writes that private
attribute. It is the only module that touches pymap's private API.
"""

from __future__ import annotations

import logging
import re

from pymap.config import IMAPConfig
from pymap.exceptions import InvalidAuth, ResponseError
from pymap.flags import FlagOp
from pymap.imap.state import ConnectionState
from pymap.interfaces.login import LoginInterface
from pymap.parsing import EndLine, Params, Space
from pymap.parsing.command import Command, CommandAuth, CommandNoArgs, CommandSelect
from pymap.parsing.command.nonauth import AuthenticateCommand, LoginCommand
from pymap.parsing.command.select import CloseCommand, FetchCommand
from pymap.parsing.commands import Commands, InvalidCommand
from pymap.parsing.exceptions import NotParseable
from pymap.parsing.primitives import Atom
from pymap.parsing.response import (
    CommandResponse,
    ResponseBye,
    ResponseCode,
    ResponseNo,
    ResponseOk,
    UntaggedResponse,
)
from pymap.parsing.specials import AString
from pymap.parsing.specials.flag import Seen
from pymap.selected import SelectedMailbox
from pysasl.creds.server import ServerCredentials

from mailcue_server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    LimitExceeded,
    MailcueError,
    NotFound,
)
from mailcue_server.workers.imap.fetch import FetchLine
from mailcue_server.workers.imap.message import Message

log = logging.getLogger(__name__)

MAX_AUTH_FAILURES = 3
_CODES: tuple[tuple[type[MailcueError], bytes], ...] = (
    (NotFound, b"NONEXISTENT"),
    (Conflict, b"ALREADYEXISTS"),
    (LimitExceeded, b"LIMIT"),  # before its base class Invalid
    (Invalid, b"CANNOT"),
    (Forbidden, b"NOPERM"),
)
_CommandResult = tuple[CommandResponse, SelectedMailbox | None]


class UnselectCommand(CommandNoArgs, CommandSelect):
    """UNSELECT: leave the selected mailbox without expunging (RFC 3691)."""

    command = b"UNSELECT"


class NamespaceCommand(CommandNoArgs, CommandAuth):
    """NAMESPACE: where the folders live (RFC 2342)."""

    command = b"NAMESPACE"


class EnableCommand(CommandAuth):
    """ENABLE: turn on extensions that change responses (RFC 5161)."""

    command = b"ENABLE"

    def __init__(self, tag: bytes, capabilities: list[bytes]) -> None:
        super().__init__(tag)
        self.capabilities = capabilities

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[EnableCommand, memoryview]:
        capabilities: list[bytes] = []
        while True:
            try:
                _, after = Space.parse(buf, params)
                atom, buf = Atom.parse(after, params)
            except NotParseable:
                break
            capabilities.append(atom.value.upper())
        if not capabilities:
            raise NotParseable(buf)
        _, buf = EndLine.parse(buf, params)
        return cls(params.tag, capabilities), buf


class LenientLoginCommand(LoginCommand):
    """LOGIN whose unquoted user and password may hold ``*`` and ``%``.

    RFC 9051's ``astring`` leaves out the list wildcards, but clients send them
    bare (imaplib does) and servers take them (Dovecot's master users are
    ``user*master``). Quoted strings and literals parse as before.
    """

    _BARE = re.compile(rb"[\x21\x23-\x27\x2A-\x5B\x5D-\x7A\x7C\x7E]+")

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[LenientLoginCommand, memoryview]:
        _, buf = Space.parse(buf, params)
        userid, buf = cls._argument(buf, params)
        _, buf = Space.parse(buf, params)
        password, buf = cls._argument(buf, params)
        _, buf = EndLine.parse(buf, params)
        return cls(params.tag, userid, password), buf

    @classmethod
    def _argument(cls, buf: memoryview, params: Params) -> tuple[bytes, memoryview]:
        match = cls._BARE.match(buf)
        if match is not None:
            return match.group(0), buf[match.end() :]
        value, buf = AString.parse(buf, params)
        return value.value, buf


class RejectedCommand(Command):
    """A command refused while it was read (line or literal too long): its reply is ready."""

    command = b"[REJECTED]"

    def __init__(self, tag: bytes, response: CommandResponse) -> None:
        super().__init__(tag)
        self.response = response

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[RejectedCommand, memoryview]:
        raise NotParseable(buf)  # never parsed: the connection builds it


def register_commands(commands: Commands) -> Commands:
    """Add the commands pymap lacks to a parser."""
    for command in (UnselectCommand, NamespaceCommand, EnableCommand, LenientLoginCommand):
        commands.register(command)
    return commands


def no_response(tag: bytes, error: MailcueError) -> ResponseNo:
    """A domain error as a tagged NO with an RFC 5530 response code."""
    code = next((code for kind, code in _CODES if isinstance(error, kind)), None)
    text = error.message.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
    return ResponseNo(tag, text, ResponseCode.of(code))


class ImapState(ConnectionState):
    """pymap's connection state machine with our rules and the missing commands."""

    def __init__(self, login: LoginInterface, config: IMAPConfig) -> None:
        super().__init__(login, config)
        self._auth_failures = 0

    @property
    def authenticated(self) -> bool:
        """Whether a LOGIN or AUTHENTICATE succeeded (the idle timeout depends on it)."""
        return self._session is not None

    async def do_greeting(self) -> CommandResponse:
        return ResponseOk(b"*", self.config.greeting, self.capability)

    async def do_command(self, cmd: Command) -> CommandResponse:
        if isinstance(cmd, RejectedCommand):
            return cmd.response
        if isinstance(cmd, InvalidCommand) and _too_big(cmd):
            return ResponseNo(cmd.tag, b"Message too large.", ResponseCode.of(b"TOOBIG"))
        try:
            return await super().do_command(cmd)
        except MailcueError as exc:
            return no_response(cmd.tag, exc)
        except ResponseError:
            raise
        except Exception:
            log.exception("IMAP %s failed", cmd.command.decode("ascii", "replace"))
            return ResponseNo(cmd.tag, b"Internal server error.", ResponseCode.of(b"SERVERBUG"))

    async def do_authenticate(
        self, cmd: AuthenticateCommand | LoginCommand, creds: ServerCredentials | None
    ) -> CommandResponse:
        try:
            return await super().do_authenticate(cmd, creds)
        except InvalidAuth as exc:
            self._auth_failures += 1
            response = exc.get_response(cmd.tag)
            if self._auth_failures >= MAX_AUTH_FAILURES:
                response.add_untagged(ResponseBye(b"Too many failed logins."))
            return response

    async def do_fetch(self, cmd: FetchCommand) -> _CommandResult:
        """FETCH (RFC 3501 section 6.4.5) written by ``fetch.FetchLine``."""
        selected = self.selected
        if not cmd.uid:
            selected.hide_expunged = True  # no EXPUNGE may shift sequence numbers mid-FETCH
        set_seen = not selected.readonly and any(attr.set_seen for attr in cmd.attributes)
        if set_seen and any(attr.value == b"FLAGS" for attr in cmd.attributes):
            # The new flags go out in this FETCH; no second untagged FETCH for them.
            selected.silence(cmd.sequence_set, frozenset({Seen}), FlagOp.ADD)
        found, updates = await self.session.fetch_messages(selected, cmd.sequence_set, set_seen)
        response = ResponseOk(cmd.tag, cmd.command + b" completed.")
        for seq, message in found:
            if message.expunged:
                response.code = ResponseCode.of(b"EXPUNGEISSUED")
            if isinstance(message, Message):
                response.add_untagged(FetchLine(seq, message, selected, cmd.attributes))
        return response, updates

    async def do_unselect(self, cmd: UnselectCommand) -> _CommandResult:
        self._selected = None
        return ResponseOk(cmd.tag, b"UNSELECT completed."), None

    async def do_close(self, cmd: CloseCommand) -> _CommandResult:
        if self.selected.readonly:
            self._selected = None
            return ResponseOk(cmd.tag, b"CLOSE completed."), None
        return await super().do_close(cmd)

    async def do_namespace(self, cmd: NamespaceCommand) -> _CommandResult:
        response = ResponseOk(cmd.tag, b"NAMESPACE completed.")
        response.add_untagged(UntaggedResponse(b'NAMESPACE (("" "/")) NIL NIL'))
        return response, None

    async def do_enable(self, cmd: EnableCommand) -> _CommandResult:
        # None of the extensions ENABLE can turn on (CONDSTORE, QRESYNC, UTF8=ACCEPT) is offered.
        response = ResponseOk(cmd.tag, b"ENABLE completed.")
        response.add_untagged(UntaggedResponse(b"ENABLED"))
        return response, None


def _too_big(cmd: InvalidCommand) -> bool:
    error = cmd.parse_exc
    return error is not None and bytes(error.code or b"") == b"[TOOBIG]"
