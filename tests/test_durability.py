"""Once SMTP answers 250, the message survives a kill -9 one instant later."""

from __future__ import annotations

import signal
import smtplib
import threading
from pathlib import Path

from mailcue_server.store import message_queries
from mailcue_server.store.db import Database
from mailcue_server.store.mail_models import INBOX, Message
from processes import ServeProcess, cli_env

SENDERS = 4
PER_SENDER = 25
RECIPIENT = "durable@mailcue.local"


def _mail(sender: int, n: int) -> bytes:
    return (
        f"From: s{sender}@example.test\r\nTo: {RECIPIENT}\r\n"
        f"Subject: durable {sender}-{n}\r\nMessage-ID: <d{sender}-{n}@example.test>\r\n"
        f"\r\nbody {sender}-{n}\r\n"
    ).encode()


async def test_every_acknowledged_message_survives_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acknowledged: list[bytes] = []
    lock = threading.Lock()

    with ServeProcess(cli_env(data_dir), tmp_path) as node:
        node.wait_listening()
        port = node.listener_port("smtp")

        def send(sender: int) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                for n in range(PER_SENDER):
                    raw = _mail(sender, n)
                    client.sendmail(f"s{sender}@example.test", [RECIPIENT], raw)
                    with lock:  # sendmail returned: the server said 250
                        acknowledged.append(raw)

        threads = [threading.Thread(target=send, args=(s,)) for s in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        node.proc.send_signal(signal.SIGKILL)  # the instant after the last 250
        assert node.proc.wait(timeout=10) == -signal.SIGKILL

    assert len(acknowledged) == SENDERS * PER_SENDER
    db = Database(f"sqlite://{(data_dir / 'mailcue.db').resolve()}")
    await db.open()
    try:
        page = await message_queries.list_page(RECIPIENT, INBOX, offset=0, limit=1000)
        assert page.total == len(acknowledged)
        rows = await Message.filter(folder__name=INBOX).values_list("raw_bytes", flat=True)
        stored = {bytes(raw) for raw in rows}
        missing = [raw for raw in acknowledged if not any(s.endswith(raw) for s in stored)]
        assert missing == []
    finally:
        await db.close()
