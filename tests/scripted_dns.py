"""A UDP DNS server answering from a script: for failures dnsmasq cannot express,
such as one record type of a name failing while the others answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Reply = dns.rcode.Rcode | tuple[str, ...]  # an error rcode, or the records (empty: NODATA)


class _Scripted(asyncio.DatagramProtocol):
    def __init__(self, replies: Mapping[tuple[str, str], Reply]) -> None:
        self._replies = replies
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        key = (question.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype))
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        found = self._replies.get(key, dns.rcode.NXDOMAIN)
        if isinstance(found, dns.rcode.Rcode):
            reply.set_rcode(found)
        elif found:
            rrset = dns.rrset.from_text_list(question.name, 60, "IN", question.rdtype, found)
            reply.answer.append(rrset)
        assert self._transport is not None
        self._transport.sendto(reply.to_wire(), addr)


@asynccontextmanager
async def scripted_dns(replies: Mapping[tuple[str, str], Reply]) -> AsyncIterator[str]:
    """A UDP DNS server answering ``(name, type)`` from ``replies`` (others: NXDOMAIN)."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Scripted(replies), local_addr=("127.0.0.1", 0)
    )
    try:
        yield f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    finally:
        transport.close()
