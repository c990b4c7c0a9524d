"""What the spec export scripts share: the repo root, and writing or checking an output file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def ensure_importable() -> None:
    """Let the scripts import ``mailcue_server`` from a checkout without installing it."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def render_json(document: Any) -> str:
    """The exact text written to disk: two-space JSON, UTF-8 kept, trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_or_check(path: Path, text: str, *, check: bool, regenerate: str) -> int:
    """Write ``text`` to ``path``, or with ``check`` compare it and report staleness.

    Returns:
        The process exit code: 0 when written or up to date, 1 when stale or missing.
    """
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            print(f"{path} is up to date.")
            return 0
        state = "is missing" if current is None else "is stale (differs from the code)"
        print(f"{path} {state}. Regenerate it with: {regenerate}", file=sys.stderr)
        return 1
    path.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {path}")
    return 0
