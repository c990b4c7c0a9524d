"""Write the REST API's OpenAPI 3.1 document (``openapi.json``) from the FastAPI app.

``openapi.json`` is a build output (STYLE.md rule 19): it is generated from the
routes, never edited by hand, and ``tests/test_specs.py`` fails when the
committed copy is stale. The settings are built from the ``Settings`` field
defaults with no ``.env`` file and a fixed dummy secret, so the document never
depends on the environment or the machine; building the app does no I/O.

Usage (from anywhere; no install needed)::

    python scripts/export_openapi.py            # rewrite openapi.json at the repo root
    python scripts/export_openapi.py --check    # exit 1 if openapi.json is stale
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spec_files import REPO_ROOT, ensure_importable, render_json, write_or_check

DEFAULT_OUTPUT = REPO_ROOT / "openapi.json"
SERVER_URL = "http://localhost:8088"
REGENERATE = "python scripts/export_openapi.py"
# Building the app signs nothing, so a fixed key keeps the export free of I/O and secrets.
DUMMY_SECRET = "export-only-dummy-secret-not-used-for-signing-0000"  # noqa: S105


def build_openapi() -> dict[str, Any]:
    """Build the app from fixed settings and return its OpenAPI document.

    Returns:
        FastAPI's document, in FastAPI's key order, with a ``servers`` entry
        pointing at the default local HTTP port added after ``info``.
    """
    ensure_importable()
    from mailcue_server.api.app import create_app
    from mailcue_server.app import build_services
    from mailcue_server.config import Settings, load_settings
    from mailcue_server.events.memory import MemoryBus

    # Every field explicit, so MAILCUE_* variables in the caller's shell can't leak in.
    values: dict[str, Any] = {
        name: field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
    }
    values["secret_key"] = DUMMY_SECRET
    settings = load_settings(_env_file=None, **values)
    app = create_app(build_services(settings, DUMMY_SECRET, MemoryBus()))
    document = app.openapi()
    ordered: dict[str, Any] = {}
    for key, value in document.items():
        ordered[key] = value
        if key == "info":
            ordered["servers"] = [{"url": SERVER_URL, "description": "Local MailCue server"}]
    return ordered


def render(document: Any) -> str:
    """The exact text written to disk."""
    return render_json(document)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Write openapi.json from the FastAPI app.")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="default: openapi.json at repo root"
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    regenerate = (
        REGENERATE if args.output == DEFAULT_OUTPUT else f"{REGENERATE} --output {args.output}"
    )
    return write_or_check(
        args.output, render(build_openapi()), check=args.check, regenerate=regenerate
    )


if __name__ == "__main__":
    sys.exit(main())
