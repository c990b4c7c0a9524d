"""One IMAP connection's byte stream: line and literal limits, timeouts, buffered writes.

pymap's ``IMAPConnection`` runs the command loop; this subclass changes how
it reads and writes:

- Command lines are capped (:data:`MAX_LINE`); a longer one is skipped whole
  and answered ``BAD``. Non-synchronizing literals (RFC 7888) are read before
  parsing, so their size is checked here: one above the limit (APPENDLIMIT
  for APPEND, :data:`MAX_LITERAL` otherwise) is read and thrown away, never
  buffered, and the command gets ``NO [TOOBIG]`` (RFC 7889); one far above
  it ends the connection.
- A client silent for ``idle_timeout`` seconds is logged out with BYE
  (RFC 9051 section 5.4 asks for at least 30 minutes once logged in); before
  login ``login_timeout`` applies, which is much shorter.
- A response is written as a few large writes instead of one per line:
  ``FETCH 1:*`` on a big folder becomes a handful of socket sends.
- STARTTLS drops anything the client sent before the handshake instead of
  running it as if it came over TLS (CVE-2011-0411, RFC 7817 section 3).
- IDLE (RFC 2177) cleans up its reader and updater tasks when the server
  shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from asyncio import StreamReader, StreamWriter

from proxyprotocol.sock import SocketInfo
from pymap.concurrent import Event
from pymap.config import IMAPConfig
from pymap.context import subsystem
from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.parsing.command import Command
from pymap.parsing.command.select import IdleCommand
from pymap.parsing.commands import Commands
from pymap.parsing.response import (
    CommandResponse,
    Response,
    ResponseBad,
    ResponseBye,
    ResponseCode,
    ResponseContinuation,
    ResponseNo,
    ResponseOk,
)

from mailcue_server.workers.imap.extensions import ImapState, RejectedCommand
from mailcue_server.workers.imap.search import MAX_NESTING, Nesting

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
"""Longest command line, literals excluded (RFC 7162 section 4 asks for at least 8,192)."""
MAX_LITERAL = 64 * 1024
"""Largest non-synchronizing literal outside APPEND (passwords, search strings)."""
MAX_DISCARD = 16 * 1024 * 1024
"""How far past the limit a non-synchronizing literal is read and dropped before we hang up."""
WRITE_CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT = 60.0

_LITERAL_PLUS = re.compile(rb"~?\{(\d+)\+\}\r?\n\Z")
_TAG = re.compile(rb"[\x21-\x7e]+")


class _LineTooLong(Exception):
    pass


class _LiteralTooBig(Exception):
    pass


class _NestedTooDeeply(Exception):
    pass


class _WriteBuffer:
    """Collects a response's many small writes into few large ones."""

    def __init__(self, writer: StreamWriter) -> None:
        self._writer = writer
        self._chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._chunks:
            self._writer.write(b"".join(self._chunks))
            self._chunks.clear()
            self._size = 0


class ImapConnection(IMAPConnection):
    """pymap's connection loop with our limits, timeouts and buffered writes.

    Attributes:
        waiting: True while the client is between commands or IDLE: a
            shutdown may end such a connection at once.
    """

    def __init__(
        self,
        commands: Commands,
        config: IMAPConfig,
        reader: StreamReader,
        writer: StreamWriter,
        sock_info: SocketInfo,
        *,
        idle_timeout: float,
        login_timeout: float,
        max_append: int,
    ) -> None:
        super().__init__(commands, config, reader, writer, sock_info)
        self._idle_timeout = idle_timeout
        self._login_timeout = min(login_timeout, idle_timeout)
        self._silence = self._login_timeout  # how long the next read may wait
        self._max_append = max_append
        self._literal_limit = MAX_LITERAL
        self._command_limit = MAX_LITERAL + MAX_LINE
        self._first_line = True
        self._tag = b"*"
        self._nesting: Nesting | None = None
        self.waiting = False

    # -- reading ------------------------------------------------------------------------------

    async def read_command(self, state: ConnectionState) -> Command:
        self._first_line = True
        self._tag = b"*"
        self.waiting = True
        logged_in = isinstance(state, ImapState) and state.authenticated
        self._silence = self._idle_timeout if logged_in else self._login_timeout
        try:
            return await super().read_command(state)
        except _LineTooLong:
            return RejectedCommand(self._tag, ResponseBad(self._tag, b"Command line too long."))
        except (_NestedTooDeeply, RecursionError):
            # pymap parses and evaluates nested lists and SEARCH keys recursively.
            text = b"Nested more than %d levels deep." % MAX_NESTING
            return RejectedCommand(self._tag, ResponseBad(self._tag, text))
        except _LiteralTooBig:
            code = ResponseCode.of(b"TOOBIG")
            return RejectedCommand(self._tag, ResponseNo(self._tag, b"Literal too large.", code))
        finally:
            self.waiting = False

    async def readline(self) -> memoryview:
        buf = bytearray(await self._line())
        if self._first_line:
            self._first_line = False
            self.waiting = False
            self._start_command(bytes(buf))
        self._count_nesting(buf)
        while (match := _LITERAL_PLUS.search(buf)) is not None:
            size = int(match.group(1))
            if size > self._literal_limit + MAX_DISCARD:
                # Not worth reading just to throw away: RFC 7888 section 4 lets us hang up.
                await self.write_response(ResponseBye(b"Literal too large."))
                raise EOFError
            if size > self._literal_limit or len(buf) + size > self._command_limit:
                await self._discard(size)
                raise _LiteralTooBig
            buf += await self._exactly(size)
            line = await self._line()
            self._count_nesting(line)
            buf += line
        if self._nesting is not None and self._nesting.too_deep:
            raise _NestedTooDeeply  # the whole command is read: the next line is a command
        return memoryview(buf)

    def _count_nesting(self, line: bytes | bytearray) -> None:
        if self._nesting is not None:
            self._nesting.read(bytes(line))

    async def read_continuation(self, literal_length: int) -> memoryview:
        literal = await self._exactly(literal_length)
        return memoryview(literal + bytes(await self.readline()))

    def _start_command(self, line: bytes) -> None:
        words = line.split(None, 2)
        if words and _TAG.fullmatch(words[0]):
            self._tag = words[0]
        verb = b" ".join(words[1:]).upper()
        # SEARCH and UID SEARCH: pymap recurses once per level of their criteria.
        searching = verb.startswith(b"SEARCH") or verb.startswith(b"UID SEARCH")
        self._nesting = Nesting() if searching else None
        is_append = len(words) > 1 and words[1].upper() == b"APPEND"
        self._literal_limit = self._max_append if is_append else MAX_LITERAL
        # Each APPENDed message may reach the limit (MULTIAPPEND, RFC 3502); any other
        # command gets one literal's worth in all, however many literals it sends.
        self._command_limit = sys.maxsize if is_append else MAX_LITERAL + MAX_LINE

    async def _line(self) -> bytes:
        """The next line with its line break.

        Raises:
            EOFError: The client closed the connection, or stayed silent too long.
            _LineTooLong: The line was over :data:`MAX_LINE`; it has been skipped.
        """
        overlong = False
        while True:
            try:
                async with asyncio.timeout(self._silence):
                    line = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                raise EOFError from None
            except asyncio.LimitOverrunError as exc:
                chunk = await self.reader.readexactly(exc.consumed)  # already buffered
                if self._first_line and not overlong:
                    self._start_command(chunk)
                overlong = True
                continue
            except TimeoutError:
                await self.write_response(ResponseBye(b"Autologout; idle for too long."))
                raise EOFError from None
            if overlong:
                raise _LineTooLong
            return line

    async def _exactly(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(self._silence):
                return await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, TimeoutError):
            raise EOFError from None

    async def _discard(self, size: int) -> None:
        """Read and drop a literal we will not take, then the rest of its command."""
        while True:
            while size:
                size -= len(await self._exactly(min(size, WRITE_CHUNK)))
            match = _LITERAL_PLUS.search(await self._line())
            if match is None:
                return
            size = int(match.group(1))

    # -- writing ------------------------------------------------------------------------------

    async def write_response(self, resp: Response) -> None:
        buffer = _WriteBuffer(self.writer)
        try:
            await resp.async_write(buffer)
            buffer.flush()
            async with asyncio.timeout(self._idle_timeout):
                await self.writer.drain()
        except ConnectionError:
            pass
        except TimeoutError:
            # The client stopped reading; further reads end the command loop.
            self.writer.transport.abort()

    async def start_tls(self) -> None:
        # Bytes sent before the handshake arrived in the clear: never run them (RFC 7817 s. 3).
        buffered = getattr(self.reader, "_buffer", None)  # StreamReader has no public drop
        if isinstance(buffered, bytearray) and buffered:
            log.warning(
                "IMAP STARTTLS: dropped %d octets sent before the handshake", len(buffered)
            )
            buffered.clear()
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await super().start_tls()
        except TimeoutError:
            raise ConnectionAbortedError("TLS handshake timed out") from None

    # -- IDLE ---------------------------------------------------------------------------------

    async def idle(self, state: ConnectionState, cmd: IdleCommand) -> CommandResponse:
        """IDLE (RFC 2177): push updates until DONE; end both helper tasks on any exit."""
        response = await state.do_command(cmd)
        if not isinstance(response, ResponseOk):
            return response
        await self.write_response(ResponseContinuation(b"Idling."))
        done: Event = subsystem.get().new_event()
        updates = asyncio.create_task(self.handle_updates(state, done, cmd))
        finished = asyncio.create_task(self._read_idle_done(cmd))
        self.waiting = True
        try:
            ok = await finished
        except BaseException:
            done.set()
            finished.cancel()
            updates.cancel()
            await asyncio.gather(finished, updates, return_exceptions=True)
            raise
        finally:
            self.waiting = False
        done.set()
        await updates
        if not ok:
            return ResponseBad(cmd.tag, b'Expected "DONE".')
        return response

    async def _read_idle_done(self, cmd: IdleCommand) -> bool:
        """Whether the line that ends IDLE is ``DONE``; an over-long one is skipped and is not."""
        try:
            return await self.read_idle_done(cmd)
        except _LineTooLong:
            return False
