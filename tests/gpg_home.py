"""The real GnuPG in a throwaway GNUPGHOME: the reference our OpenPGP must match."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

GPG = shutil.which("gpg") or "/usr/bin/gpg"
OUTSIDE_ADDRESS = "outside@example.org"
OUTSIDE = f"Outside Person <{OUTSIDE_ADDRESS}>"
"""A correspondent outside MailCue: the key the shared keyring starts with."""


class GnuPG:
    """One keyring in ``home``; keys made here have no passphrase.

    The agent starts on first need (key generation, secret keys) and
    :meth:`close` stops it; ``with GnuPG(home) as gpg:`` does that on leaving.
    """

    def __init__(self, home: Path) -> None:
        if not Path(GPG).exists():
            pytest.skip("gpg is not installed (Debian package gnupg)")
        home.chmod(0o700)
        self.home = home
        self.env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}

    def __enter__(self) -> GnuPG:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        command = [
            GPG,
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--trust-model",
            "always",
            "--status-fd",
            "2",
            *args,
        ]
        done = subprocess.run(command, input=input, capture_output=True, env=self.env, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed:\n{done.stderr.decode()}")
        return done

    def generate(self, uid: str, algorithm: str = "ed25519", *, expire: str = "never") -> str:
        """A key pair made by gpg (signing primary key, encryption subkey); its fingerprint."""
        self.run("--quick-gen-key", uid, algorithm, "sign", expire)
        fingerprint = self.fingerprint(uid)
        subkey = "cv25519" if algorithm == "ed25519" else algorithm
        self.run("--quick-add-key", fingerprint, subkey, "encr", expire)
        return fingerprint

    def fingerprint(self, uid: str) -> str:
        listing = self.run("--with-colons", "--list-keys", uid).stdout.decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))

    def export(self, uid: str) -> str:
        return self.run("--armor", "--export", uid).stdout.decode()

    def export_secret(self, uid: str) -> str:
        return self.run("--armor", "--export-secret-keys", uid).stdout.decode()

    def import_key(self, armored: str) -> None:
        self.run("--import", input=armored.encode())

    def sign_and_encrypt(self, data: bytes, *, signer: str, recipient: str) -> bytes:
        """One ASCII-armoured OpenPGP message, signed by ``signer``, encrypted to ``recipient``."""
        return self.run(
            "--armor",
            "--sign",
            "--encrypt",
            "--local-user",
            signer,
            "--recipient",
            recipient,
            input=data,
        ).stdout

    def show(self, armored: str) -> list[list[str]]:
        """``--with-colons`` records of a key, without importing it."""
        shown = self.run(
            "--with-colons", "--import-options", "show-only", "--import", input=armored.encode()
        )
        return [line.split(":") for line in shown.stdout.decode().splitlines()]

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "all"], env=self.env, capture_output=True, check=False
        )


def outside_keyring(home: Path) -> Iterator[GnuPG]:
    """A keyring fixture's body: gpg's key for :data:`OUTSIDE`; the agent stopped after.

    Use as ``yield from outside_keyring(tmp_path_factory.mktemp("gnupg"))``.
    """
    with GnuPG(home) as gpg:
        gpg.generate(OUTSIDE)
        yield gpg
