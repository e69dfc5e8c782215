"""What durability costs: journaled runs (``Runner(store).run``) on each store, against
the un-journaled ``workflow.run`` and against LangGraph's SQLite checkpointer.

Run with ``bash bench/run.sh`` (after the core bench) or alone:
``bench/.venv/bin/python bench/bench_journal.py [--quick] [--ablate]``.
Postgres is measured when ``ORCHESTRION_TEST_PG_DSN`` is set (``run.sh`` starts a
throwaway server with ``.ci/postgres.sh`` when it is not), else it prints
``skipped: no Postgres``.

1. per step   -- 5-step chain of ``@agent`` function agents (pydantic contracts, the
                 same bodies as bench_core), one run at a time: time per run;
                 overhead per step = (run - baseline) / 5, the same definition as
                 bench_core; a 1-step chain splits it into a marginal cost per step
                 and a fixed cost per run.  Ratios to the MemoryStore and to the
                 un-journaled ``workflow.run``; LangGraph's ratio to us.
2. throughput -- 1,000 runs of a 5-step chain at once (``asyncio.gather``; each body
                 yields once, so all runs are in flight): wall time, runs/s, and for
                 SQLite how many commits the group commit needed.
3. persisted  -- what one run leaves in each journal: rows, bytes, commits, fsyncs.
--ablate      -- the candidate changes it once simulated (P1..P4) are in src/ now; it
                 times the opt-in Postgres synchronous_commit=off, SQLite's unit costs
                 and 1,000 concurrent runs per store (with the shared cancel poller's
                 read count).

Temp files go to a fresh directory under ``--dir`` (default: $TMPDIR), removed at exit.
Timing: medians of trials interleaved trial by trial after warm-up (bench_core.compare).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as W  # noqa: E402
from bench_core import _dump, _output, compare, med, spread  # noqa: E402

from orchestrion.durable import Runner  # noqa: E402
from orchestrion.store import MemoryStore, SQLiteStore  # noqa: E402
from orchestrion.store import codec as store_codec  # noqa: E402

Fn = Callable[[], Awaitable[Any]]
STEPS = 5
CONC_N = 1_000

LABEL = {
    "baseline": "baseline (coerce only, bench_core)",
    "run": "workflow.run (no journal)",
    "memory": "Runner + MemoryStore",
    "sqlite": "Runner + SQLiteStore (NORMAL)",
    "sqlite_full": "Runner + SQLiteStore (FULL)",
    "postgres": "Runner + PostgresStore",
    "lg": "LangGraph, no checkpointer",
    "lg_sqlite": "LangGraph + AsyncSqliteSaver (default)",
    "lg_sqlite_sync": "LangGraph + AsyncSqliteSaver, sync",
}
UNJOURNALED = {"memory": "run", "sqlite": "run", "sqlite_full": "run", "postgres": "run",
               "lg_sqlite": "lg", "lg_sqlite_sync": "lg"}


def us(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e6:,.0f} µs"


def xr(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b <= 0 else f"{a / b:,.1f}x"


def table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------- the implementations


class Env:
    """The stores, savers and workflows of one bench run (opened once, shared by sections)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.stack = contextlib.AsyncExitStack()
        self.stores: dict[str, Any] = {}
        self.pg_schema: str | None = None
        self.pg_note = ""
        self.saver: Any = None
        self.lg_note = ""

    async def open(self) -> None:
        enter = self.stack.enter_async_context
        self.stores["memory"] = await enter(MemoryStore())
        self.stores["sqlite"] = await enter(SQLiteStore(self.tmp / "normal.db"))
        self.stores["sqlite_full"] = await enter(
            SQLiteStore(self.tmp / "full.db", synchronous="FULL"))
        dsn = os.environ.get("ORCHESTRION_TEST_PG_DSN")
        if not dsn:
            self.pg_note = "skipped: no Postgres (set ORCHESTRION_TEST_PG_DSN, or use run.sh)"
        else:
            try:
                from orchestrion.store.postgres import PostgresStore

                self.pg_schema = f"bench_journal_{os.getpid()}"
                self.stores["postgres"] = await enter(PostgresStore(dsn, schema=self.pg_schema))
                self.stack.push_async_callback(_drop_schema, dsn, self.pg_schema)
            except Exception as exc:  # report it and go on without Postgres
                self.pg_note = f"skipped: Postgres unavailable ({type(exc).__name__}: {exc})"
        try:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            self.saver = await enter(AsyncSqliteSaver.from_conn_string(str(self.tmp / "lg.db")))
            await self.saver.setup()
        except ImportError:
            self.lg_note = ("skipped: langgraph-checkpoint-sqlite is not installed "
                            "(bench/run.sh installs it)")

    async def close(self) -> None:
        await self.stack.aclose()

    def fns(self, steps: int, body: Any = W.work, *, lg: bool = True) -> dict[str, Fn]:
        wf = W.orch_chain(steps, W.POLICIES["orch"], body)
        out: dict[str, Fn] = {"baseline": W.baseline_chain(steps, body), "run": W.orch_runner(wf)}
        for name, store in self.stores.items():
            out[name] = durable_runner(Runner(store), wf)
        if lg:
            out["lg"] = W.lg_runner(W.lg_chain(steps, body))
            if self.saver is not None:
                graph = lg_chain(steps, body, self.saver)
                out["lg_sqlite"] = lg_runner(graph, durability=None)
                out["lg_sqlite_sync"] = lg_runner(graph, durability="sync")
        return out


async def _drop_schema(dsn: str, schema: str) -> None:
    """Leave the server as we found it (the DSN may be a developer's own database)."""
    import psycopg

    try:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]
    except psycopg.Error as exc:
        print(f"[journal] could not drop Postgres schema {schema}: {exc}", file=sys.stderr)


def durable_runner(runner: Runner, wf: Any) -> Fn:
    async def run() -> Any:
        return await runner.run(wf, W.RUN_INPUT)

    return run


def lg_chain(steps: int, body: Any, saver: Any) -> Any:
    """bench_core's LangGraph chain (same node, same state), compiled with a checkpointer."""
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(W.DocState)

    async def node(state: W.DocState) -> dict[str, Any]:
        return {"doc": await W.base_step(body, state["doc"])}

    names = [f"s{i}" for i in range(steps)]
    for name in names:
        g.add_node(name, node)
    g.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g.compile(checkpointer=saver)


def lg_runner(graph: Any, *, durability: str | None) -> Fn:
    """Each invoke on its own thread (a fresh run, as a new Runner.run is)."""
    extra = {} if durability is None else {"durability": durability}

    async def run() -> Any:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        return await graph.ainvoke({"doc": W.RUN_INPUT}, config, **extra)

    return run


async def verify(fns: dict[str, Fn]) -> None:
    seen = {k: _dump(_output(await f(), "doc")) for k, f in fns.items()}
    bad = {k: v for k, v in seen.items() if v != seen["baseline"]}
    if bad:
        raise SystemExit(f"implementations disagree with the baseline: {bad!r}")


async def warm(fns: dict[str, Fn], n: int) -> None:
    for f in fns.values():
        for _ in range(n):
            await f()


def fsync_latency(where: Path, n: int = 100) -> tuple[float, float]:
    """Median and 90th percentile of write-4-KB-then-fsync in ``where``."""
    fd, path = tempfile.mkstemp(dir=where)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return statistics.median(times), times[int(n * 0.9)]


# ---------------------------------------------------------------------- 1. per step


RESULTS: dict[str, Any] = {}


async def bench_steps(env: Env, quick: bool) -> None:
    trials, target = (3, 0.1) if quick else (9, 0.15)
    # Both chain lengths in one comparison, interleaved trial by trial, so that the
    # machine's noise hits the 1-step and 5-step runs of a trial alike.
    fns: dict[str, Fn] = {}
    for steps in (1, STEPS):
        these = env.fns(steps)
        await verify(these)
        await warm(these, 10 if quick else 30)
        fns.update({f"{k}@{steps}": f for k, f in these.items()})
    res = await compare(fns, trials=trials, target_s=target)
    names = [k for k in LABEL if f"{k}@{STEPS}" in res]
    r5 = {k: res[f"{k}@{STEPS}"] for k in names}
    r1 = {k: res[f"{k}@1"] for k in names}
    t5 = {k: med(v) for k, v in r5.items()}
    b5 = t5["baseline"]
    ovh = {k: (v - b5) / STEPS for k, v in t5.items() if k != "baseline"}
    # per trial: marginal = (ovh5 - ovh1) / 4, fixed = ovh1 - marginal; then the median
    marg, fixed = {}, {}
    for k in ovh:
        m = [((a5 - b5_) - (a1 - b1_)) / (STEPS - 1) for a5, b5_, a1, b1_
             in zip(r5[k], r5["baseline"], r1[k], r1["baseline"], strict=True)]
        f = [(a1 - b1_) - mi for a1, b1_, mi in zip(r1[k], r1["baseline"], m, strict=True)]
        marg[k], fixed[k] = med(m), med(f)
    RESULTS.update(t5=t5, ovh=ovh, marg=marg, fixed=fixed)

    head = ["5-step chain, one run at a time", "time per run", "overhead per step",
            "journal per step", "marginal per step", "fixed per run", "vs memory",
            "vs workflow.run", "LangGraph SQLite / this"]
    rows = []
    for k in LABEL:
        if k not in t5:
            continue
        if k == "baseline":
            rows.append([LABEL[k], f"{us(t5[k])} {spread(r5[k])}",
                         "-", "-", "-", "-", "-", "-", "-"])
            continue
        base = UNJOURNALED.get(k)
        journal = (t5[k] - t5[base]) / STEPS if base else None
        ours = k in ("memory", "sqlite", "sqlite_full", "postgres", "run")
        vs_lg = "-"
        if ours and "lg_sqlite" in ovh:
            vs_lg = f"{xr(ovh['lg_sqlite'], ovh[k])} (sync {xr(ovh['lg_sqlite_sync'], ovh[k])})"
        rows.append([
            LABEL[k], f"{us(t5[k])} {spread(r5[k])}", us(ovh[k]), us(journal),
            us(marg[k]), us(fixed[k]),
            xr(ovh[k], ovh["memory"]) if ours and k != "run" else "-",
            xr(ovh[k], ovh["run"]) if ours else xr(ovh[k], ovh["lg"]) + " (of LG)",
            vs_lg,
        ])
    print()
    table(head, rows)
    for note in (env.pg_note, env.lg_note):
        if note:
            print(f"  {note}")


# ---------------------------------------------------------------------- 2. throughput


async def bench_conc(env: Env, quick: bool) -> None:
    fns = env.fns(STEPS, W.tick, lg=False)
    fns.pop("baseline")
    fns.pop("sqlite_full")  # one SQLite row is enough here; the commit counts tell the rest
    await verify({"baseline": W.baseline_chain(STEPS, W.tick), **fns})
    for f in fns.values():  # warm-up at a smaller scale
        await asyncio.gather(*(f() for _ in range(50)))
    trials = 1 if quick else 3
    wall: dict[str, list[float]] = {k: [] for k in fns}
    commits: dict[str, list[float]] = {}
    for _ in range(trials):
        for k, f in fns.items():
            store = env.stores.get(k)
            worker = getattr(store, "worker", None) if isinstance(store, SQLiteStore) else None
            c0, w0 = (worker.commits, worker.writes) if worker else (0, 0)
            t0 = time.perf_counter()
            results = await asyncio.gather(*(f() for _ in range(CONC_N)))
            wall[k].append(time.perf_counter() - t0)
            if not all(getattr(r, "ok", True) for r in results):
                raise SystemExit(f"{k}: a concurrent run failed")
            if worker:
                commits.setdefault(k, []).append(worker.commits - c0)
                commits.setdefault(k + ":writes", []).append(worker.writes - w0)
            del results
    head = [f"{CONC_N:,} concurrent 5-step runs", "wall time", "runs/s", "per run (wall/N)",
            "vs workflow.run", "vs memory", "commits (writes) per run"]
    rows = []
    w = {k: med(v) for k, v in wall.items()}
    RESULTS["conc"] = w
    for k in fns:
        c = ""
        if k in commits:
            c = (f"{med(commits[k]) / CONC_N:.2f} ({med(commits[k + ':writes']) / CONC_N:.1f})")
        rows.append([LABEL[k], f"{w[k]:.3f} s {spread(wall[k])}", f"{CONC_N / w[k]:,.0f}",
                     us(w[k] / CONC_N), xr(w[k], w["run"]) if k != "run" else "-",
                     xr(w[k], w["memory"]) if k not in ("run", "memory") else "-", c])
    print()
    table(head, rows)
    if env.pg_note:
        print(f"  {env.pg_note}")


# ---------------------------------------------------------------------- 3. persisted


def _sqlite_bytes(path: Path, table_name: str, columns: tuple[str, ...], where: str,
                  arg: str) -> tuple[int, int]:
    total = " + ".join(f"COALESCE(LENGTH({c}), 0)" for c in columns)
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows, size = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM({total}), 0) FROM {table_name} WHERE {where} = ?",
            (arg,)).fetchone()
    return int(rows), int(size)


async def bench_persisted(env: Env) -> None:
    """One 5-step run on each side, then count what it left in the file."""
    print()
    head = ["what one 5-step run persists", "rows", "bytes (payload columns)",
            "commits", "fsyncs"]
    rows = []
    store: SQLiteStore = env.stores["sqlite"]
    wf = W.orch_chain(STEPS, W.POLICIES["orch"])
    runner = Runner(store)
    c0 = store.worker.commits
    result = await runner.run(wf, W.RUN_INPUT)
    commits = store.worker.commits - c0
    path = Path(store.path)
    parts = []
    total_rows = total_bytes = 0
    for tname, cols, key in (("runs", store_codec.RUN_COLUMNS, "run_id"),
                             ("steps", store_codec.STEP_COLUMNS, "run_id"),
                             ("events", store_codec.EVENT_COLUMNS, "run_id")):
        n, b = _sqlite_bytes(path, tname, cols, key, result.run_id)
        parts.append(f"{n} {tname}")
        total_rows += n
        total_bytes += b
    rows.append(["orchestrion SQLiteStore (NORMAL)",
                 f"{total_rows} ({', '.join(parts)})", f"{total_bytes:,}",
                 f"{commits} (1 per store write)",
                 "1 (create_run); FULL: every commit"])
    if env.saver is not None:
        saver = env.saver
        graph = lg_chain(STEPS, W.work, saver)
        calls = {"aput": 0, "aput_writes": 0}
        originals = {name: getattr(saver, name) for name in calls}

        def counted(name: str) -> Any:
            async def call(*a: Any, **k: Any) -> Any:
                calls[name] += 1
                return await originals[name](*a, **k)

            return call

        for name in calls:
            setattr(saver, name, counted(name))
        try:
            tid = uuid.uuid4().hex
            await graph.ainvoke({"doc": W.RUN_INPUT}, {"configurable": {"thread_id": tid}})
        finally:
            for name in calls:
                delattr(saver, name)
        lg_path = env.tmp / "lg.db"
        ck = _sqlite_bytes(lg_path, "checkpoints", ("thread_id", "checkpoint_ns",
                                                    "checkpoint_id", "parent_checkpoint_id",
                                                    "type", "checkpoint", "metadata"),
                           "thread_id", tid)
        wr = _sqlite_bytes(lg_path, "writes", ("thread_id", "checkpoint_ns", "checkpoint_id",
                                               "task_id", "task_path", "channel", "type",
                                               "value"), "thread_id", tid)
        cur = await saver.conn.execute("PRAGMA synchronous")
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get((await cur.fetchone())[0])
        n_commits = calls["aput"] + calls["aput_writes"]
        rows.append(["LangGraph AsyncSqliteSaver",
                     f"{ck[0] + wr[0]} ({ck[0]} checkpoints, {wr[0]} writes)",
                     f"{ck[1] + wr[1]:,}",
                     f"{n_commits} ({calls['aput']} aput + {calls['aput_writes']} aput_writes)",
                     f"{n_commits} (WAL, synchronous={sync})"])
    table(head, rows)


# ---------------------------------------------------------------------- --ablate
# The candidate src/ changes this mode once simulated by monkeypatching are all in src/
# now, so there is nothing left to patch; it times what remains worth knowing around
# them: an opt-in Postgres setting, the SQLite unit costs, and the pools at 1,000 runs.

IN_SRC = {
    "P1": "Workflow.definition_hash is computed once per workflow",
    "P2": "a run the Runner has just created skips the opening reads",
    "P3": "Store.record_step(step, events): a step and the events up to it in one commit",
    "P4": "one CancelPoller per Runner: all live runs' statuses in one read per 0.25 s",
}


async def bench_ablate(env: Env, quick: bool) -> None:
    trials, target = (3, 0.1) if quick else (5, 0.3)
    print()
    for name, change in IN_SRC.items():
        print(f"{name} = {change}: in src/, timed as is (no simulation needed)")
    wf = W.orch_chain(STEPS, W.POLICIES["orch"])
    fns: dict[str, Fn] = {"baseline": W.baseline_chain(STEPS)}
    for sname in ("memory", "sqlite", "sqlite_full", "postgres"):
        if sname in env.stores:
            fns[sname] = durable_runner(Runner(env.stores[sname]), wf)
    stores: dict[str, Any] = {k: env.stores[k] for k in ("memory", "sqlite", "postgres")
                              if k in env.stores}
    schema = env.pg_schema or "orchestrion_bench"
    if "postgres" in stores:  # upper bound: every Postgres write with synchronous_commit=off
        from orchestrion.store.postgres import PostgresStore

        class AsyncCommitPostgres(PostgresStore):
            async def _connect(self) -> Any:
                conn = await super()._connect()
                await conn.execute("SET synchronous_commit TO off")
                return conn

        pg_async = await env.stack.enter_async_context(
            AsyncCommitPostgres(os.environ["ORCHESTRION_TEST_PG_DSN"], schema=schema))
        fns["postgres, synchronous_commit=off"] = durable_runner(Runner(pg_async), wf)
    if env.saver is not None:
        graph = lg_chain(STEPS, W.work, env.saver)
        fns["lg_sqlite"] = lg_runner(graph, durability=None)
        fns["lg_sqlite_sync"] = lg_runner(graph, durability="sync")
    await verify(fns)
    await warm(fns, 10)
    res = await compare(fns, trials=trials, target_s=target)
    t = {k: med(v) for k, v in res.items()}
    ovh = {k: (v - t["baseline"]) / STEPS for k, v in t.items()}
    lg, lg_sync = ovh.get("lg_sqlite"), ovh.get("lg_sqlite_sync")
    head = ["5-step chain, as is", "time per run", "overhead per step",
            "LangGraph SQLite / this (sync)"]
    rows = []
    for k in fns:
        if k == "baseline":
            continue
        sname, _, extra = k.partition(", ")
        label = LABEL.get(sname, sname) + (f": {extra}" if extra else "")
        ours = not k.startswith("lg")
        rows.append([label, f"{us(t[k])} {spread(res[k])}", us(ovh[k]),
                     f"{xr(lg, ovh[k])} ({xr(lg_sync, ovh[k])})" if lg and ours else "-"])
    print()
    table(head, rows)

    # what one SQLite worker round trip costs: the unit of every saving above
    store = env.stores["sqlite"]
    worker = store.worker
    rid = (await Runner(store).run(wf, W.RUN_INPUT)).run_id
    await worker.run(lambda c: c.execute(
        "CREATE TABLE IF NOT EXISTS bench_micro (k INTEGER PRIMARY KEY, v TEXT)"), write=True)
    micro = {
        "worker round trip, no-op job": lambda: worker.run(lambda c: None),
        "read by key (get_run)": lambda: store.get_run(rid),
        "write + COMMIT (NORMAL)": lambda: worker.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO bench_micro VALUES (1, 'x')"), write=True),
        "durable write + COMMIT (FULL for it)": lambda: worker.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO bench_micro VALUES (1, 'x')"), write=True, durable=True),
    }
    mres = await compare(micro, trials=trials, target_s=target / 3)
    print()
    table(["SQLiteStore micro-costs", "per call"],
          [[k, f"{us(med(v))} {spread(v)}"] for k, v in mres.items()])

    # 1,000 concurrent runs on each store, and a larger Postgres pool (the default is 4)
    if "postgres" in stores:
        from orchestrion.store.postgres import PostgresStore

        stores["postgres16"] = await env.stack.enter_async_context(PostgresStore(
            os.environ["ORCHESTRION_TEST_PG_DSN"], schema=schema, max_connections=16))
        LABEL["postgres16"] = "Runner + PostgresStore(max_connections=16)"
    rows = []
    wf_tick = W.orch_chain(STEPS, W.POLICIES["orch"], W.tick)
    for sname, store_ in stores.items():
        runner = Runner(store_)
        f = durable_runner(runner, wf_tick)
        await asyncio.gather(*(f() for _ in range(50)))
        sq_worker = store_.worker if isinstance(store_, SQLiteStore) else None
        c0, w0 = (sq_worker.commits, sq_worker.writes) if sq_worker else (0, 0)
        r0 = runner._cancels.reads
        t0 = time.perf_counter()
        results = await asyncio.gather(*(f() for _ in range(CONC_N)))
        wall = time.perf_counter() - t0
        if not all(r.ok for r in results):
            raise SystemExit(f"{sname}: a concurrent run failed")
        commits = "-"
        if sq_worker:
            commits = (f"{(sq_worker.commits - c0) / CONC_N:.2f} "
                       f"({(sq_worker.writes - w0) / CONC_N:.1f})")
        rows.append([LABEL[sname], f"{wall:.3f} s", f"{CONC_N / wall:,.0f}",
                     f"{runner._cancels.reads - r0:,}", commits])
    print()
    table([f"{CONC_N:,} concurrent 5-step runs (1 trial)", "wall time", "runs/s",
           "cancel polls (all runs)", "commits (writes) per run"], rows)


# ---------------------------------------------------------------------- main


def versions() -> str:
    import platform
    import sqlite3 as s3
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {platform.python_version()}", f"sqlite {s3.sqlite_version}"]
    for dist in ("orchestrion", "pydantic", "langgraph", "langgraph-checkpoint-sqlite",
                 "aiosqlite", "psycopg"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (missing)")
    return ", ".join(parts)


def verdict(env: Env) -> None:
    ovh = RESULTS.get("ovh", {})
    print("\ntargets (reported, not asserted):")
    if "lg_sqlite" not in ovh:
        print("  [n/a ] journaled step on SQLite >= 3x cheaper than LangGraph's SQLite "
              "checkpointer: LangGraph's saver not available")
        return
    r = ovh["lg_sqlite"] / ovh["sqlite"]
    flag = "MET " if r >= 3 else "MISS"
    print(f"  [{flag}] journaled step on SQLite >= 3x cheaper than LangGraph's SQLite "
          f"checkpointer: ours {us(ovh['sqlite'])} vs LangGraph {us(ovh['lg_sqlite'])} "
          f"per step = {r:.1f}x (like for like, every commit fsynced and each step acked "
          f"before the next: FULL {us(ovh['sqlite_full'])} vs durability=sync "
          f"{us(ovh['lg_sqlite_sync'])} = {ovh['lg_sqlite_sync'] / ovh['sqlite_full']:.1f}x)")
    marg = RESULTS["marg"]
    fixed = RESULTS["fixed"]
    print(f"  [info] split: marginal per step ours {us(marg['sqlite'])} vs LangGraph "
          f"{us(marg['lg_sqlite'])} ({xr(marg['lg_sqlite'], marg['sqlite'])}); fixed per "
          f"run ours {us(fixed['sqlite'])} vs LangGraph {us(fixed['lg_sqlite'])} "
          f"({xr(fixed['lg_sqlite'], fixed['sqlite'])})")


async def amain(args: argparse.Namespace) -> None:
    print(f"[journal] {versions()}", flush=True)
    base = Path(args.dir) if args.dir else None
    tmp = Path(tempfile.mkdtemp(prefix="orchestrion-bench-journal-", dir=base))
    fs_med, fs_p90 = fsync_latency(tmp)
    print(f"[journal] temp dir {tmp}: fsync of 4 KB median {us(fs_med)}, p90 {us(fs_p90)}",
          flush=True)
    env = Env(tmp)
    t0 = time.perf_counter()
    try:
        await env.open()
        for name, coro in (("steps", lambda: bench_steps(env, args.quick)),
                           ("conc", lambda: bench_conc(env, args.quick)),
                           ("persisted", lambda: bench_persisted(env))):
            if args.only and name not in args.only.split(","):
                continue
            t = time.perf_counter()
            await coro()
            print(f"[journal] {name} done in {time.perf_counter() - t:.1f} s", flush=True)
        if "ovh" in RESULTS:
            verdict(env)
        if args.ablate:
            t = time.perf_counter()
            await bench_ablate(env, args.quick)
            print(f"[journal] ablate done in {time.perf_counter() - t:.1f} s", flush=True)
    finally:
        try:
            await env.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n[journal] total {time.perf_counter() - t0:.0f} s on {os.cpu_count()} CPU(s); "
          "medians of interleaved trials, ± is the half-range of the trials.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer trials (~30 s)")
    p.add_argument("--only", help="comma list of: steps,conc,persisted")
    p.add_argument("--ablate", action="store_true",
                   help="then the extras: Postgres synchronous_commit=off, SQLite unit costs, "
                   "1,000 runs per store with cancel-poll counts")
    p.add_argument("--dir", help="where the temp journals go (default: $TMPDIR)")
    asyncio.run(amain(p.parse_args()))


if __name__ == "__main__":
    main()
