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

from spec_files import REPO_ROOT, ensure_importable, write_or_check

DEFAULT_OUTPUT = REPO_ROOT / "schema.graphql"
REGENERATE = "python scripts/export_schema.py"


def build_sdl() -> str:
    """The schema in GraphQL SDL, ending in exactly one newline."""
    ensure_importable()
    from mailcue_server.schema.root import build_schema

    return build_schema().as_str().rstrip("\n") + "\n"


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
