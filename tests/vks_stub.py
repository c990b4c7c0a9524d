"""A keyserver stub for tests: the VKS calls (keys.openpgp.org's API) on loopback.

It accepts uploads, records verification requests and serves published keys
by address; ``mode`` makes it fail the ways real keyservers do. Servers under
test get its ``url`` as ``MAILCUE_KEYSERVER_URL``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pgpy

KEYSERVER_TIMEOUT = 0.5
"""The keyserver deadline test servers get; ``hang`` answers later than this."""


class VksStub:
    """A keyserver speaking the VKS upload, request-verify and by-email calls, on loopback.

    ``mode`` makes it fail the way real ones do: ``fail`` (HTTP 500), ``drop``
    (the connection closes unanswered) or ``hang`` (answers after the client gave up).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.uploads: list[str] = []
        self.verifications: list[dict[str, Any]] = []
        self.published: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, list[str]]] = {}
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/vks/v1/upload":
            keytext = str(body.get("keytext", ""))
            self.uploads.append(keytext)
            if "PRIVATE KEY" in keytext:
                return 400, {"error": "Secret keys are not accepted"}
            key, _ = pgpy.PGPKey.from_blob(keytext)
            fingerprint = str(key.fingerprint).replace(" ", "")
            emails = [uid.email for uid in key.userids if uid.email]
            token = secrets.token_hex(8)
            self._tokens[token] = (fingerprint, emails)
            status = dict.fromkeys(emails, "unpublished")
            return 200, {"key_fpr": fingerprint, "status": status, "token": token}
        if path == "/vks/v1/request-verify":
            self.verifications.append(body)
            fingerprint, emails = self._tokens[str(body["token"])]
            status = {a: ("pending" if a in body["addresses"] else "unpublished") for a in emails}
            return 200, {"key_fpr": fingerprint, "status": status, "token": body["token"]}
        return 404, {"error": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _misbehave(self) -> bool:
                if stub.mode == "hang":
                    time.sleep(KEYSERVER_TIMEOUT * 4)
                if stub.mode == "drop":
                    self.close_connection = True
                    return True
                if stub.mode == "fail":
                    self._send(500, {"error": "database down"})
                    return True
                return False

            def _send(self, status: int, body: dict[str, Any] | str) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                kind = "application/pgp-keys" if isinstance(body, str) else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self._misbehave():
                    self._send(*stub.answer(self.path, body))

            def do_GET(self) -> None:
                if self._misbehave():
                    return
                address = self.path.removeprefix("/vks/v1/by-email/").replace("%40", "@")
                if address in stub.published:
                    self._send(200, stub.published[address])
                else:
                    self._send(404, {"error": "No key found for this email address"})

        return Handler
