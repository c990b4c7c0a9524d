"""Write the GraphQL schema's SDL (``schema.graphql``) from the Strawberry schema.

Like ``openapi.json``, ``schema.graphql`` is a build output: the Strawberry types
are the single source of truth, this file is what clients and reviewers diff,
and ``tests/test_specs.py`` fails when the committed copy is stale.

Usage (from anywhere; no install needed)::

    python scripts/export_schema.py            # rewrite schema.graphql at the repo root
    python scripts/export_schema.py --check    # exit 1 if schema.graphql is stale
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "schema.graphql"
REGENERATE = "python scripts/export_schema.py"


def _ensure_importable() -> None:
    """Let ``python scripts/...`` import the checkout's package without installing it."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def build_sdl() -> str:
    """The schema in GraphQL SDL, ending in exactly one newline."""
    _ensure_importable()
    from mailcue_server.schema.root import build_schema

    return build_schema().as_str().rstrip("\n") + "\n"


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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        description="Write schema.graphql from the Strawberry schema."
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="default: schema.graphql at repo root"
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    regenerate = (
        REGENERATE if args.output == DEFAULT_OUTPUT else f"{REGENERATE} --output {args.output}"
    )
    return write_or_check(args.output, build_sdl(), check=args.check, regenerate=regenerate)


if __name__ == "__main__":
    sys.exit(main())
