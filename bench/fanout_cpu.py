"""CPU time (not wall) per 100-way fan-out run: a steadier proxy for the fan-out overhead.

``bench/.venv/bin/python bench/fanout_cpu.py [--profile]``
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as W  # noqa: E402


async def cpu_per_run(fn, n: int) -> float:
    for _ in range(3):
        await fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            await fn()
        best = min(best, (time.process_time() - t0) / n)
    return best


async def main(profile: bool) -> None:
    W.FANOUT_SLEEP_S = 0.002  # CPU is what we measure; keep the sleep short
    fns = {"baseline": W.baseline_fanout(100),
           "orch": W.orch_runner(W.orch_fanout(100, W.POLICIES["orch"])),
           "orch_nt": W.orch_runner(W.orch_fanout(100, W.POLICIES["orch_nt"]))}
    res = {k: await cpu_per_run(f, 20) for k, f in fns.items()}
    for k, v in res.items():
        extra = "" if k == "baseline" else f"  (+{(v - res['baseline']) / 100 * 1e6:.1f} µs/branch)"
        print(f"  {k:9} {v * 1e3:6.2f} ms CPU per run{extra}")
    if profile:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(30):
            await fns["orch"]()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    asyncio.run(main("--profile" in sys.argv))
