"""Chaos worker: ``python chaos_worker.py JOURNAL N`` makes sure runs 0..N-1 are
submitted (journaled, then acknowledged in ``JOURNAL.acks``), then resumes every
unfinished run, confirming interrupted side effects as a human would.

Killed at any point and started again, it must converge: every acknowledged run
finishes, and no completed step runs twice.
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from chaos_flows import workflows

from orchestrion.durable import Runner
from orchestrion.store import SQLiteStore, UnknownRun


def run_name(i: int, names: list[str]) -> tuple[str, str]:
    name = names[i % len(names)]
    return f"run_{i:03d}_{name}", name


async def work(journal: str, count: int) -> None:
    flows = workflows()
    names = sorted(flows)
    async with SQLiteStore(journal) as store:
        runner = Runner(store)
        print("ready", flush=True)  # the test starts its kill timer here, not at spawn
        for i in range(count):
            run_id, name = run_name(i, names)
            try:
                await store.get_run(run_id)
            except UnknownRun:
                await runner.submit(flows[name], {"n": i}, run_id=run_id)
                with open(journal + ".acks", "a") as fh:  # acknowledged only once journaled
                    fh.write(run_id + "\n")
        for _ in range(3):  # a resume may stop at a confirmation request: confirm, go on
            todo = []
            for status in ("running", "paused", "failed"):
                for run in await store.list_runs(status=status, limit=1000):  # type: ignore[arg-type]
                    for request in await store.pending_approvals(run.run_id):
                        # The only approvals here confirm interrupted side effects.
                        assert request.action["kind"] == "rerun", request.action
                        await runner.decide(request.request_id, decision="approved", by="chaos")
                    todo.append(runner.resume(run.run_id, flows[run.workflow]))
            if not todo:
                return
            await asyncio.gather(*todo)

if __name__ == "__main__":
    asyncio.run(work(sys.argv[1], int(sys.argv[2])))
