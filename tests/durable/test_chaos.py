"""Chaos: a worker process running every pattern is SIGKILLed at random points, many
times; after each restart, resume finishes every run. No acknowledged run is lost and
no completed step is executed twice (each agent checks the journal when it runs)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chaos_flows import workflows

from orchestrion.store import SQLiteStore

WORKER = Path(__file__).parent / "chaos_worker.py"
RUNS = 45
KILLS = 10


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    """Block until the worker has its journal open (or has died)."""
    assert proc.stdout is not None
    proc.stdout.readline()


def expected_outputs() -> dict[str, object]:
    """What each run must produce, computed in-process without any crash."""
    flows = workflows()
    names = sorted(flows)
    out = {}
    for i in range(RUNS):
        name = names[i % len(names)]
        result = flows[name].run_sync({"n": i})
        assert result.ok, result.error
        out[f"run_{i:03d}_{name}"] = result.output.model_dump(mode="json")
    return out


@pytest.mark.slow
def test_runs_survive_random_sigkills(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.db")
    violations = tmp_path / "violations.txt"
    violations.touch()
    env = {**os.environ, "CHAOS_JOURNAL": journal, "CHAOS_VIOLATIONS": str(violations)}
    rng = random.Random(20261127)
    expected = expected_outputs()
    violations.write_text("")  # the in-process reference runs have no journal to check

    kills = cycles = 0
    while kills < KILLS and cycles < 4 * KILLS and not all_finished(journal):
        cycles += 1
        proc = spawn(env, journal, str(RUNS))
        wait_ready(proc)
        deadline = time.monotonic() + rng.uniform(0.02, 0.35)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()[-3000:]

    print(f"chaos: {kills} kills in {cycles} cycles")
    # Finish whatever the last kill interrupted, without kills.
    final = spawn(env, journal, str(RUNS))
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-3000:]

    acked = Path(journal + ".acks").read_text().split()
    runs = asyncio.run(load_runs(journal))
    assert set(acked) <= set(runs), f"acknowledged runs lost: {set(acked) - set(runs)}"
    assert len(runs) == RUNS  # every run was eventually journaled ...
    for run_id, (status, output) in runs.items():  # ... and finished, with the right output
        assert status == "succeeded", (run_id, status)
        assert output == expected[run_id], run_id
    assert kills >= 5, f"only {kills} kill(s) landed in {cycles} cycles: nothing was tested"
    assert violations.read_text() == "", "completed steps ran again:\n" + violations.read_text()


def all_finished(journal: str) -> bool:
    if not Path(journal).exists():
        return False
    runs = asyncio.run(load_runs(journal))
    return len(runs) == RUNS and all(status == "succeeded" for status, _ in runs.values())


async def load_runs(journal: str) -> dict[str, tuple[str, object]]:
    async with SQLiteStore(journal) as store:
        return {r.run_id: (r.status, r.output) for r in await store.list_runs(limit=1000)}
