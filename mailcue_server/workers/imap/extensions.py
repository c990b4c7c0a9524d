"""What pymap 0.36.7 lacks, and the one place that reaches into its connection state.

- Commands: NAMESPACE (RFC 2342), ENABLE (RFC 5161) and UNSELECT (RFC 3691).
- A LOGIN that takes ``*`` and ``%`` in unquoted arguments, as Dovecot does:
  the master login ``<address>*<admin>`` and passwords with those characters
  arrive that way from Python's imaplib, which quotes neither.
- FETCH written by ``fetch.py`` instead of pymap's slower generic renderer,
  parsed by ``fetch_items.py`` so header lists come back as asked.
- :class:`ImapState`, a pymap ``ConnectionState`` that
  - decides plaintext LOGIN by our configuration alone (pymap also allows it
    to any client on localhost),
  - maps our domain errors to tagged NO responses with RFC 5530 codes and
    turns an unexpected failure into ``NO [SERVERBUG]`` instead of a dropped
    connection (a command is a request boundary, STYLE rule 24),
  - answers an APPEND over the size limit with ``NO [TOOBIG]`` (RFC 7889),
  - closes the connection after repeated failed logins,
  - lets CLOSE of an EXAMINEd mailbox succeed without expunging (RFC 3501
    section 6.4.2; pymap answers it with NO),
  - sends SELECT's FLAGS without ``\\*`` and with the keywords in use, and
    puts a new keyword's FLAGS ahead of the FETCHes that carry it
    (``selected.py``),
  - answers ``BAD`` to a sequence number beyond EXISTS,
  - sends no MAILBOXID code (OBJECTID, RFC 8474, is not advertised) and does
    not list STARTTLS once logged in (it is refused there).

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
from pymap.parsing.command.auth import CreateCommand, SelectCommand
from pymap.parsing.command.nonauth import AuthenticateCommand, LoginCommand
from pymap.parsing.command.select import CloseCommand, FetchCommand
from pymap.parsing.commands import Commands, InvalidCommand
from pymap.parsing.exceptions import NotParseable
from pymap.parsing.primitives import Atom
from pymap.parsing.response import (
    CommandResponse,
    ResponseBad,
    ResponseBye,
    ResponseCode,
    ResponseNo,
    ResponseOk,
    UntaggedResponse,
)
from pymap.parsing.response.code import Capability, UidNext, UidValidity, Unseen
from pymap.parsing.response.specials import ExistsResponse, RecentResponse
from pymap.parsing.specials import AString, SequenceSet
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
from mailcue_server.workers.imap.fetch import FetchLine, FetchReply, Vanished
from mailcue_server.workers.imap.fetch_items import AsAskedFetchCommand, AsAskedUidFetchCommand
from mailcue_server.workers.imap.message import Message
from mailcue_server.workers.imap.selected import KeywordNotice, Selected, flags_responses

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
    for command in (
        UnselectCommand,
        NamespaceCommand,
        EnableCommand,
        LenientLoginCommand,
        AsAskedFetchCommand,
        AsAskedUidFetchCommand,
    ):
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

    @property
    def capability(self) -> Capability:
        listed = super().capability
        if self._session is None:
            return listed
        # STARTTLS is refused once logged in (RFC 3501 section 6.2.1): do not offer it.
        return Capability(cap for cap in listed.capabilities if cap != b"STARTTLS")

    async def do_greeting(self) -> CommandResponse:
        return ResponseOk(b"*", self.config.greeting, self.capability)

    async def do_command(self, cmd: Command) -> CommandResponse:
        if isinstance(cmd, RejectedCommand):
            return cmd.response
        if isinstance(cmd, InvalidCommand) and _too_big(cmd):
            return ResponseNo(cmd.tag, b"Message too large.", ResponseCode.of(b"TOOBIG"))
        if self._past_exists(cmd):
            return ResponseBad(cmd.tag, cmd.command + b": Invalid message sequence number.")
        try:
            response = await super().do_command(cmd)
        except MailcueError as exc:
            return no_response(cmd.tag, exc)
        except ResponseError:
            raise
        except Exception:
            log.exception("IMAP %s failed", cmd.command.decode("ascii", "replace"))
            return ResponseNo(cmd.tag, b"Internal server error.", ResponseCode.of(b"SERVERBUG"))
        _keywords_first(response)
        return response

    def _past_exists(self, cmd: Command) -> bool:
        """Whether a command names a message sequence number beyond EXISTS (BAD, as in
        Dovecot; RFC 9051 section 6.4.8 treats UIDs differently: they may name nothing).
        """
        sequence_set = getattr(cmd, "sequence_set", None)
        if self._selected is None or not isinstance(sequence_set, SequenceSet):
            return False
        if sequence_set.uid:
            return False
        exists = self._selected.messages.exists
        for element in sequence_set.sequences:
            for end in element if isinstance(element, tuple) else (element,):
                if isinstance(end, int) and end > exists:
                    return True
        return False

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

    async def do_select(self, cmd: SelectCommand) -> _CommandResult:
        """SELECT and EXAMINE (RFC 3501 sections 6.3.1, 6.3.2, 7.1, 7.2.6)."""
        self._selected = None
        mailbox, updates = await self.session.select_mailbox(cmd.mailbox, cmd.readonly)
        keywords = updates.take_keywords() if isinstance(updates, Selected) else frozenset()
        if updates.readonly:
            response = ResponseOk(cmd.tag, b"Selected mailbox.", ResponseCode.of(b"READ-ONLY"))
            recent = mailbox.recent
        else:
            response = ResponseOk(cmd.tag, b"Selected mailbox.", ResponseCode.of(b"READ-WRITE"))
            recent = updates.session_flags.recent
        response.add_untagged(*flags_responses(keywords, readonly=updates.readonly))
        response.add_untagged(ExistsResponse(updates.messages.exists), RecentResponse(recent))
        response.add_untagged_ok(b"Predicted next UID.", UidNext(mailbox.next_uid))
        response.add_untagged_ok(b"UIDs valid.", UidValidity(mailbox.uid_validity))
        if mailbox.first_unseen:
            response.add_untagged_ok(b"First unseen message.", Unseen(mailbox.first_unseen))
        return response, updates

    async def do_create(self, cmd: CreateCommand) -> _CommandResult:
        """CREATE (RFC 3501 section 6.3.3) without pymap's MAILBOXID code."""
        if cmd.mailbox == "INBOX":
            return ResponseNo(cmd.tag, b"Cannot create INBOX."), None
        _, updates = await self.session.create_mailbox(cmd.mailbox, selected=self._selected)
        return ResponseOk(cmd.tag, b"CREATE completed."), updates

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
        vanished = Vanished()
        response = FetchReply(cmd.tag, cmd.command + b" completed.", vanished)
        for seq, message in found:
            if isinstance(message, Message):
                response.add_untagged(FetchLine(seq, message, selected, cmd.attributes, vanished))
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


def _keywords_first(response: CommandResponse) -> None:
    """Move a new keyword's FLAGS/PERMANENTFLAGS ahead of the FETCHes that use it."""
    untagged = response._untagged
    notices = [item for item in untagged if isinstance(item, KeywordNotice)]
    if notices:
        response._untagged = notices + [i for i in untagged if not isinstance(i, KeywordNotice)]


def _too_big(cmd: InvalidCommand) -> bool:
    error = cmd.parse_exc
    return error is not None and bytes(error.code or b"") == b"[TOOBIG]"
