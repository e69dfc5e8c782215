"""A quick before/after check of orchestrion's own overhead (no LangGraph, ~20 s).

``bench/.venv/bin/python bench/quick_overhead.py [chain,refine,fanout] [trials]``

Prints the 5-step chain's overhead per step (default policy and no timeouts), the
50-round refine's overhead per round, and the 100-way fan-out's wall time over the
50 ms ideal.  Same harness as ``bench_core.py`` (interleaved trials, medians).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as W  # noqa: E402
from bench_core import compare, med  # noqa: E402


async def main(which: set[str], trials: int) -> None:
    if "chain" in which:
        fns = {"base": W.baseline_chain(5),
               "orch": W.orch_runner(W.orch_chain(5, W.POLICIES["orch"])),
               "nt": W.orch_runner(W.orch_chain(5, W.POLICIES["orch_nt"]))}
        r = await compare(fns, trials=trials, target_s=0.2)
        t = {k: med(v) for k, v in r.items()}
        print(f"chain5  overhead/step: default {(t['orch'] - t['base']) / 5 * 1e6:6.2f} µs, "
              f"no timeouts {(t['nt'] - t['base']) / 5 * 1e6:6.2f} µs "
              f"(base run {t['base'] * 1e6:.1f} µs)", flush=True)
    if "refine" in which:
        fns = {"base": W.baseline_refine(),
               "orch": W.orch_runner(W.orch_refine(W.POLICIES["orch"])),  # type: ignore[arg-type]
               "nt": W.orch_runner(W.orch_refine(W.POLICIES["orch_nt"]))}  # type: ignore[arg-type]
        r = await compare(fns, trials=max(3, trials // 2), target_s=0.3)
        t = {k: med(v) for k, v in r.items()}
        n = W.REFINE_ROUNDS
        print(f"refine  overhead/round: default {(t['orch'] - t['base']) / n * 1e6:6.2f} µs, "
              f"no timeouts {(t['nt'] - t['base']) / n * 1e6:6.2f} µs", flush=True)
    if "fanout" in which:
        fns = {"base": W.baseline_fanout(100),
               "orch": W.orch_runner(W.orch_fanout(100, W.POLICIES["orch"])),
               "nt": W.orch_runner(W.orch_fanout(100, W.POLICIES["orch_nt"]))}
        r = await compare(fns, trials=max(3, trials), target_s=0, reps=8)
        t = {k: (med(v) / W.FANOUT_SLEEP_S - 1) * 100 for k, v in r.items()}
        print(f"fanout  over ideal: base {t['base']:+.1f}%, default {t['orch']:+.1f}%, "
              f"no timeouts {t['nt']:+.1f}%", flush=True)


if __name__ == "__main__":
    which = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else {"chain", "refine", "fanout"}
    asyncio.run(main(which, int(sys.argv[2]) if len(sys.argv) > 2 else 7))
