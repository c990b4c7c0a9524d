#!/usr/bin/env bash
# The dependency lock: uv.lock is resolved from pyproject.toml's ranges, and
# requirements/*.txt are its pip-installable exports (with hashes) that the
# README's commands and .ci/run install from.
#
#   scripts/lock.sh            refresh after editing pyproject.toml (keeps what it can)
#   scripts/lock.sh --upgrade  move every package to the newest release the ranges allow
#   scripts/lock.sh --check    fail when pyproject.toml, uv.lock and the exports disagree
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}

export_to() {  # export_to FILE [uv export flags...]
  local out=$1; shift
  "$uv" export --quiet --frozen --no-emit-project --format requirements-txt "$@" -o "$out"
}

if [ "${1:-}" = "--check" ]; then
  "$uv" lock --check
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  export_to "$tmp/serve.txt"
  export_to "$tmp/test.txt" --extra test
  for name in serve test; do
    # uv writes the command into the header; compare what follows it.
    if ! diff <(grep -v '^#' "$tmp/$name.txt") <(grep -v '^#' "requirements/$name.txt") >/dev/null; then
      echo "requirements/$name.txt is stale: run scripts/lock.sh" >&2
      exit 1
    fi
  done
  echo "lock is up to date"
  exit 0
fi

"$uv" lock "$@"
export_to requirements/serve.txt
export_to requirements/test.txt --extra test
