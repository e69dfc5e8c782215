#!/usr/bin/env bash
# Orchestration-overhead benchmark: orchestrion vs a plain-asyncio baseline vs LangGraph,
# all in one process.  Usage (from anywhere):
#
#   bash bench/run.sh              # full run (~3 min on 2 cores)
#   bash bench/run.sh --quick      # fewer repetitions, 1,000 runs only (~40 s)
#   bash bench/run.sh --profile    # then profile the per-step hot path and time candidate
#                                  # src/ changes as in-process patches (~+70 s)
#
# Extra arguments go to bench_core.py (see `bash bench/run.sh --help`).
# The benchmark lives in its own venv at bench/.venv (gitignored), created on first use.
# Set BENCH_PYTHON to choose the interpreter (default: python3.11, else python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PY="${BENCH_PYTHON:-$(command -v python3.11 || command -v python3)}"

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "[bench] needs Python 3.11+ (found $("$PY" --version 2>&1)); set BENCH_PYTHON=..." >&2
  exit 2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[bench] creating venv at $VENV with $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV"
fi

# Install once; re-install when pyproject.toml changes (stamp holds its hash).
STAMP="$VENV/.bench-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" "$HERE/run.sh" | sha256sum | cut -c1-16)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  echo "[bench] installing orchestrion (editable) and langgraph into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT" "langgraph>=0.2"
  echo "$WANT" > "$STAMP"
fi

cd "$ROOT"
exec "$VENV/bin/python" "$HERE/bench_core.py" "$@"
