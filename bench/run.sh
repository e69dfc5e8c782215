#!/usr/bin/env bash
# Orchestration-overhead benchmark: orchestrion vs a plain-asyncio baseline vs LangGraph,
# all in one process, then the journal benchmark (durable runs on each store vs LangGraph's
# SQLite checkpointer).  Usage (from anywhere):
#
#   bash bench/run.sh              # full run (~3 min core + ~2 min journal on 2 cores)
#   bash bench/run.sh --quick      # fewer repetitions, 1,000 runs only (~40 s + ~35 s)
#   bash bench/run.sh --profile    # then profile the per-step hot path and time candidate
#                                  # src/ changes as in-process patches (~+70 s)
#   bash bench/run.sh --only journal            # the journal bench alone
#   bash bench/run.sh --only journal --ablate   # ... then its candidate src/ changes (~+60 s)
#   bash bench/run.sh --no-journal              # the core bench alone
#
# --only takes core workloads and/or `journal`; without --only both benches run.  --quick
# goes to both; --ablate to the journal bench; other arguments go to bench_core.py (see
# `bash bench/run.sh --help`).  The journal bench measures Postgres on
# $ORCHESTRION_TEST_PG_DSN; when it is unset, it starts a throwaway server with
# .ci/postgres.sh in a directory of this invocation's own (/tmp/orchestrion-bench-pg-PID,
# first free port from $BENCH_PG_PORT, default 56432), so it never reuses or stops a
# server that tests or another bench are using, and it stops it at exit.
# BENCH_PG=0 skips Postgres.
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
  echo "[bench] installing orchestrion (editable, postgres extra), langgraph and" \
    "langgraph-checkpoint-sqlite into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[postgres]" \
    "langgraph>=0.2" "langgraph-checkpoint-sqlite>=2"
  echo "$WANT" > "$STAMP"
fi

# Split the arguments between the two benches.
core_args=()
journal_args=()
run_core=1
run_journal=1
only=""
while (($#)); do
  case "$1" in
    --only)
      [[ $# -ge 2 ]] || { echo "[bench] --only needs a value" >&2; exit 2; }
      only="$2"; shift ;;
    --only=*) only="${1#--only=}" ;;
    --no-journal) run_journal=0 ;;
    --quick) core_args+=("$1"); journal_args+=("$1") ;;
    --ablate) journal_args+=("$1") ;;
    -h|--help)
      "$VENV/bin/python" "$HERE/bench_core.py" --help
      echo
      "$VENV/bin/python" "$HERE/bench_journal.py" --help
      exit 0 ;;
    *) core_args+=("$1") ;;
  esac
  shift
done
if [[ -n "$only" ]]; then
  IFS=, read -r -a parts <<< "$only"
  rest=()
  run_journal=0
  for part in "${parts[@]}"; do
    if [[ "$part" == journal ]]; then run_journal=1; else rest+=("$part"); fi
  done
  if ((${#rest[@]})); then
    core_args+=(--only "$(IFS=,; echo "${rest[*]}")")
  else
    run_core=0
  fi
fi

cd "$ROOT"
if ((run_core)); then
  "$VENV/bin/python" "$HERE/bench_core.py" ${core_args[@]+"${core_args[@]}"}
fi
if ((run_journal)); then
  if [[ -z "${ORCHESTRION_TEST_PG_DSN:-}" && "${BENCH_PG:-1}" != 0 ]]; then
    # A throwaway server of this invocation's own (own directory, free port): it is never
    # one that tests or a concurrent bench use, so stopping it at exit is always safe.
    export ORCHESTRION_PG_DIR="/tmp/orchestrion-bench-pg-$$"
    export ORCHESTRION_PG_PORT="${BENCH_PG_PORT:-56432}"
    trap 'bash "$ROOT/.ci/postgres.sh" stop >/dev/null 2>&1 || true' EXIT
    trap 'exit 130' INT TERM
    if pg_env="$(bash "$ROOT/.ci/postgres.sh" start 2>"$VENV/postgres.log")"; then
      eval "$pg_env"
    else
      echo "[bench] could not start a throwaway Postgres (see $VENV/postgres.log);" \
        "the journal bench skips it"
    fi
  fi
  "$VENV/bin/python" "$HERE/bench_journal.py" ${journal_args[@]+"${journal_args[@]}"}
fi
