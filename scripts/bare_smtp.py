"""The reference for ``bench_smtp.py``: a bare aiosmtpd that answers 250 and discards the mail.

Usage: python scripts/bare_smtp.py [--port 0]

It runs on the event loop ``mailcue serve`` runs on (uvloop when installed),
with aiosmtpd's protocol as it comes and a handler that keeps nothing, so it
measures the Python SMTP ceiling of this machine: what any server built on
aiosmtpd could reach before storing a byte. It logs
``listening: smtp 127.0.0.1:<port>`` as ``mailcue serve`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP


class Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = Discard()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bench.local", data_size_limit=26214400),
        host="127.0.0.1",
        port=port,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening: smtp 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.port))


if __name__ == "__main__":
    main()
