"""Where orchestrion's per-step time goes, and what each hot-path change bought.

Run: ``bash bench/run.sh --profile`` (after the figures) or
``bench/.venv/bin/python bench/profile_hotpath.py [--quick]``.

1. cProfile of the 5-step chain under the default policy (self time per function).
2. Reverts: each hot-path change that was made is undone *in this process only*, by
   monkeypatching the previous implementation back in (src/ is never edited), and
   timed interleaved against the current runtime.  The difference is what that
   change saves.  Rows marked "upper bound" remove a feature outright instead.
3. Micro-costs of the building blocks, before and after.
4. Every revert at once (roughly the runtime before these changes) against the
   current one, on the chain, the fan-out, the refine loop and 10,000 concurrent runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import io
import json
import pstats
import sys
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as W  # noqa: E402
from bench_core import GcClock, _gather, compare, med  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from orchestrion.cost.usage import ZERO, Usage  # noqa: E402
from orchestrion.runtime.policy import Policy  # noqa: E402
from orchestrion.runtime.records import StepRecord  # noqa: E402
from orchestrion.security.envelope import Envelope  # noqa: E402


def _module(name: str) -> Any:
    """A module by dotted name (``import a.b as m`` would pick a same-named function that
    the package's __init__ re-exports, e.g. orchestrion.patterns.chain)."""
    __import__(name)
    return sys.modules[name]


contract_mod = _module("orchestrion.contracts.contract")
base_mod = _module("orchestrion.patterns.base")
chain_mod = _module("orchestrion.patterns.chain")
step_mod = _module("orchestrion.patterns.step")
context_mod = _module("orchestrion.runtime.context")
ev = _module("orchestrion.runtime.events")
run_mod = _module("orchestrion.runtime.run")
envelope_mod = _module("orchestrion.security.envelope")

# ---------------------------------------------------------------------- patch helpers


@contextlib.contextmanager
def patched(*triples: tuple[Any, str, Any]) -> Iterator[None]:
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in triples]
    try:
        for obj, name, value in triples:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


# ------------------------------------------------------------ the previous implementations


def _freeze(cls: type) -> type:
    """The same dataclass, frozen (as events and StepRecord were)."""
    spec = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            spec.append((f.name, f.type, dataclasses.field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            spec.append((f.name, f.type, dataclasses.field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, f.type))
    ns = {"kind": cls.kind} if hasattr(cls, "kind") else {}
    if "ok" in cls.__dict__:
        ns["ok"] = cls.__dict__["ok"]
    return dataclasses.make_dataclass(cls.__name__, spec, frozen=True, slots=True, namespace=ns)


EVENT_NAMES = ("RunStarted", "RunFinished", "StepStarted", "StepFinished", "Decision")


def frozen_events() -> list[tuple[Any, str, Any]]:
    return [(ev, n, _freeze(getattr(ev, n))) for n in EVENT_NAMES]


async def old_bounded(aw: Any, limit: float, t0: float, deadlines: Any = None) -> Any:
    """The previous step/run timer: asyncio.timeout around the await.  (It was inline in
    invoke/execute; as a function it adds one coroutine frame, ~0.2 µs, to the revert.)"""
    async with asyncio.timeout(limit):
        return await aw


_bounded = context_mod.bounded


def timer_per_await(aw: Any, limit: float, t0: float, deadlines: Any = None) -> Any:
    """The lazy timer without the run's shared Deadlines: one loop.call_at per await."""
    return _bounded(aw, limit, t0)


def old_payload_json(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def old_derive(self: Envelope, payload: Any, *, sender: str, key: str,
               recipient: str | None = None, extra: tuple = (),
               tainted_by: tuple = ()) -> Envelope:
    sources: tuple[str, ...] = ()
    taint: tuple[str, ...] = ()
    for env in (self, *extra):
        for src in (env.sources if env.synthetic else (env.key,) if env.key else ()):
            if src not in sources:
                sources += (src,)
        taint += tuple(t for t in env.taint_sources if t not in taint)
    taint += tuple(t for t in tainted_by if t not in taint)
    return Envelope(payload=payload, sender=sender, key=key, recipient=recipient,
                    sources=sources, tainted=bool(taint), taint_sources=taint)


def old_bundle(self: Envelope, payload: Any, *, sender: str, key: str,
               recipient: str | None = None, extra: tuple = (),
               tainted_by: tuple = ()) -> Envelope:
    env = self.derive(payload, sender=sender, key=key, recipient=recipient, extra=extra,
                      tainted_by=tainted_by)
    return dataclasses.replace(env, synthetic=True)


def old_new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def old_trace_id() -> str:
    return uuid.uuid4().hex


async def old_step_run(self: Any, ctx: Any, env: Any, scope: Any) -> Any:
    return await ctx.call(self.agent, env, key=scope.prefix + self.agent, ledger=scope.ledger)


async def old_chain_run(self: Any, ctx: Any, env: Any, scope: Any) -> Any:
    label = self.label
    for i, node in enumerate(self.steps):
        env = await node.execute(ctx, env, scope.enter(f"{label}[{i}]"))
    return env


# (name, patches, note); a "policy:" / "agents:" entry changes the workflow instead.
REVERTS: list[tuple[str, Any, str]] = [
    ("step + run timers back to asyncio.timeout",
     [(context_mod, "bounded", old_bounded), (run_mod, "bounded", old_bounded)], "change 1"),
    ("events frozen again", frozen_events(), "change 2"),
    ("StepRecord frozen again", [(context_mod, "StepRecord", _freeze(StepRecord))], "change 5"),
    ("payload_json via model_dump_json again", [(context_mod, "payload_json",
                                                 old_payload_json)], "change 3"),
    ("Envelope.derive/bundle as before (quadratic, no fast path)",
     [(Envelope, "derive", old_derive), (Envelope, "bundle", old_bundle)], "change 4"),
    ("run/trace ids from uuid4 again", [(run_mod, "new_id", old_new_id),
                                        (run_mod, "new_trace_id", old_trace_id)], "change 7"),
    ("Step/Chain coroutine frames as before",
     [(step_mod.Step, "execute", base_mod.Node.execute), (step_mod.Step, "run", old_step_run),
      (chain_mod.Chain, "run", old_chain_run)], "change 9"),
    ("no step timer (Policy.step_timeout_s=None)", "policy:step", "upper bound"),
    ("no run timer (Policy.run_timeout_s=None)", "policy:run", "upper bound, per run"),
    ("no output size check (max_output_chars=0)", "agents:nosize", "upper bound"),
]

ALL_REVERTS = [p for _, p, note in REVERTS if isinstance(p, list)]
ALL_NOTE = ("timers, frozen events and StepRecord, payload_json, derive/bundle, uuid ids and "
            "coroutine frames as they were; not reverted: Usage() allocations, the inlined "
            "emit/_account and the refine field cache")


@contextlib.contextmanager
def reverted() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for p in ALL_REVERTS:
            stack.enter_context(patched(*p))
        yield


@contextlib.contextmanager
def gc_threshold(gen0: int = 50_000, gen1: int = 20, gen2: int = 10) -> Iterator[None]:
    """A deployment knob, not a src/ change: fewer young collections, so fewer full ones."""
    old = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
    try:
        yield
    finally:
        gc.set_threshold(*old)


# ---------------------------------------------------------------------- sections


def section(title: str) -> None:
    print(f"\n== {title}")


async def profile_chain(n_runs: int = 4000) -> None:
    section(f"cProfile: {n_runs} runs of the 5-step chain, default policy "
            "(self time per call; cProfile inflates Python-level calls)")
    fn = W.orch_runner(W.orch_chain(5, Policy()))
    for _ in range(200):
        await fn()
    pr = cProfile.Profile()
    pr.enable()
    for i in range(n_runs):
        await fn()
        if not i & 31:
            await asyncio.sleep(0)
    pr.disable()
    out = io.StringIO()
    st = pstats.Stats(pr, stream=out)
    st.sort_stats("tottime")
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:22]  # type: ignore[attr-defined]
    print(f"  {'self µs/run':>11}  {'share':>6}  {'calls/run':>9}  function")
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in rows:
        where = file.split("/src/")[-1].split("/lib/python3.11/")[-1]
        print(f"  {tt / n_runs * 1e6:11.2f}  {tt / total * 100:5.1f}%  {nc / n_runs:9.1f}  "
              f"{where}:{line}({func})")
    print(f"  total profiled {total / n_runs * 1e6:.1f} µs/run")


def _nosize_chain() -> Any:
    from orchestrion.agents.function import agent as as_agent
    from orchestrion.patterns.chain import chain
    from orchestrion.workflow import Workflow

    ags = [as_agent(W.work, name=f"s{i}", max_output_chars=0) for i in range(5)]
    return W.orch_runner(Workflow(chain(*(a.name for a in ags)), agents=ags, policy=Policy()))


async def reverts(trials: int) -> None:
    section("reverts on the 5-step chain (default policy): what each change saves, timed "
            "interleaved against the current runtime; each row alone")
    cur = W.orch_runner(W.orch_chain(5, Policy()))
    base = W.baseline_chain(5)
    results: list[tuple[str, float, str]] = []
    for name, p, note in REVERTS:
        if p == "policy:step":
            other = W.orch_runner(W.orch_chain(5, Policy(step_timeout_s=None)))
        elif p == "policy:run":
            other = W.orch_runner(W.orch_chain(5, Policy(run_timeout_s=None)))
        elif p == "agents:nosize":
            other = _nosize_chain()
        else:
            other = cur
        cur_t: list[float] = []
        oth_t: list[float] = []
        for _ in range(trials):
            cur_t += (await compare({"cur": cur}, trials=1, target_s=0.12))["cur"]
            with patched(*p) if isinstance(p, list) else contextlib.nullcontext():
                oth_t += (await compare({"oth": other}, trials=1, target_s=0.12))["oth"]
        # a revert is slower than the current runtime; an upper-bound row is faster
        saved = med(oth_t) - med(cur_t) if isinstance(p, list) else med(cur_t) - med(oth_t)
        results.append((name, saved, note))
    b = await compare({"b": base, "c": cur}, trials=3, target_s=0.12)
    ovh = med(b["c"]) - med(b["b"])
    print(f"  current: {med(b['c']) * 1e6:.1f} µs/run, baseline {med(b['b']) * 1e6:.1f} µs/run, "
          f"overhead {ovh * 1e6:.1f} µs/run = {ovh / 5 * 1e6:.1f} µs/step")
    print(f"  {'saved µs/run':>12}  {'µs/step':>7}  change  [note]")
    for name, saved, note in sorted(results, key=lambda r: -r[1]):
        print(f"  {saved * 1e6:12.1f}  {saved / 5 * 1e6:7.2f}  {name}  [{note}]")


def micro() -> None:
    section("micro-costs (best of 5, µs per operation): before -> after")
    d = W.Doc(topic="x", notes=["a", "b"])
    big = W.Doc(topic="x" * 2000, notes=["n" * 200] * 40)
    env = envelope_mod.origin(d)
    frozen_sf = _freeze(ev.StepFinished)
    frozen_rec = _freeze(StepRecord)
    envs = [env.derive(d, sender="w", key=f"parallel[{i}]/w") for i in range(100)]
    g = {**globals(), "d": d, "big": big, "env": env, "ev": ev, "frozen_sf": frozen_sf,
         "frozen_rec": frozen_rec, "u": ZERO, "Usage": Usage, "first": envs[0],
         "rest": tuple(envs[1:]),
         "pj": contract_mod.payload_json}
    sf = "(1, 1.0, 'k', 'a', 1, 0.1, 0, 0, 0.0)"
    rec = ("(key='k', agent='a', status='succeeded', attempts=1, input=d, output=d, usage=u, "
           "started_at=1.0, duration_s=0.1, provenance={})")
    pairs = [
        ("StepFinished event", "frozen_sf" + sf, "ev.StepFinished" + sf),
        ("StepRecord", "frozen_rec" + rec, "StepRecord" + rec),
        ("Envelope.derive, one input", "old_derive(env, d, sender='a', key='k')",
         "env.derive(d, sender='a', key='k')"),
        ("Envelope.derive, 100 inputs (Collect merge)",
         "old_derive(first, d, sender='p', key='p', extra=rest)",
         "first.derive(d, sender='p', key='p', extra=rest)"),
        ("payload_json(small model)", "old_payload_json(d)", "pj(d)"),
        (f"payload_json({len(big.model_dump_json()) // 1024} KB model)", "old_payload_json(big)",
         "pj(big)"),
        ("zero usage", "Usage()", "ZERO"),
        ("run id", "old_new_id('run')", "run_mod.new_id('run')"),
    ]
    for label, before, after in pairs:
        n = 500 if "extra=" in before else 20000
        tb = min(timeit.repeat(before, globals=g, number=n, repeat=5)) / n
        ta = min(timeit.repeat(after, globals=g, number=n, repeat=5)) / n
        print(f"  {tb * 1e6:8.3f} -> {ta * 1e6:7.3f}  {label}")
    asyncio.run(_timer_micro())


async def _quick() -> int:
    return 1


async def _suspends() -> int:
    await asyncio.sleep(0)
    return 1


async def _timer_micro() -> None:
    bounded, deadlines = _bounded, context_mod.Deadlines()

    def none(body: Callable[[], Any]) -> Any:
        return body()

    async def timeout(body: Callable[[], Any]) -> Any:
        async with asyncio.timeout(120):
            return await body()

    def lazy(body: Callable[[], Any]) -> Any:
        return bounded(body(), 120, time.perf_counter())

    def lazy_shared(body: Callable[[], Any]) -> Any:
        return bounded(body(), 120, time.perf_counter(), deadlines)

    for body, what in ((_quick, "agent that never suspends"), (_suspends, "agent that suspends")):
        for label, f in (("no timer", none), ("asyncio.timeout(120)", timeout),
                         ("bounded(): lazy call_at", lazy),
                         ("bounded() + the run's Deadlines", lazy_shared)):
            best = float("inf")
            for _ in range(5):
                n = 30000
                t0 = time.perf_counter()
                for i in range(n):
                    await f(body)
                    if not i & 31:
                        await asyncio.sleep(0)
                best = min(best, (time.perf_counter() - t0) / n)
            print(f"  {best * 1e6:7.3f}  per step, {what}: {label}")


async def combined_effect(trials: int, big_n: int) -> None:
    section("every revert at once (" + ALL_NOTE + ") vs the current runtime")
    rows = []
    for label, make, base in (
        ("5-step chain, default policy", lambda: W.orch_chain(5, Policy()), W.baseline_chain(5)),
        ("5-step chain, no timeouts", lambda: W.orch_chain(5, W.POLICIES["orch_nt"]),
         W.baseline_chain(5)),
    ):
        fn = W.orch_runner(make())
        b, c, r = [], [], []
        for _ in range(trials):
            x = await compare({"b": base, "c": fn}, trials=1, target_s=0.12)
            with reverted():
                y = await compare({"r": fn}, trials=1, target_s=0.12)
            b += x["b"]
            c += x["c"]
            r += y["r"]
        orr, oc = (med(r) - med(b)) / 5, (med(c) - med(b)) / 5
        rows.append(f"  {label}: overhead/step reverted {orr * 1e6:.1f} -> current "
                    f"{oc * 1e6:.1f} µs (-{(1 - oc / orr) * 100:.0f}%)")
    fan = W.orch_runner(W.orch_fanout(100, Policy()))
    fan_nt = W.orch_runner(W.orch_fanout(100, Policy(step_timeout_s=None)))
    r, c, cp, cn = [], [], [], []
    for _ in range(max(3, trials)):
        with reverted():
            r += (await compare({"r": fan}, trials=1, target_s=0, reps=5))["r"]
        y = await compare({"c": fan, "cn": fan_nt}, trials=1, target_s=0, reps=5)
        c += y["c"]
        cn += y["cn"]
        with patched((context_mod, "bounded", timer_per_await)):
            cp += (await compare({"cp": fan}, trials=1, target_s=0, reps=5))["cp"]

    def pct(xs: list[float]) -> str:
        return f"{med(xs) * 1e3:.2f} ms ({(med(xs) / W.FANOUT_SLEEP_S - 1) * 100:+.1f}%)"

    rows.append(f"  100-way fan-out x 50 ms: reverted {pct(r)} -> current {pct(c)}; current "
                f"with a loop timer per step instead of the run's Deadlines {pct(cp)}; "
                f"current with no step timer {pct(cn)}")
    wf = W.orch_refine(Policy())
    if wf is not None:
        fn = W.orch_runner(wf)
        r, c = [], []
        for _ in range(trials):
            with reverted():
                r += (await compare({"r": fn}, trials=1, target_s=0.15))["r"]
            c += (await compare({"c": fn}, trials=1, target_s=0.15))["c"]
        rows.append(f"  50-round refine, default policy: reverted {med(r) * 1e3:.2f} -> current "
                    f"{med(c) * 1e3:.2f} ms per run ({(med(r) - med(c)) / 50 * 1e6:.1f} µs "
                    "saved per round)")
    conc = W.orch_runner(W.orch_chain(3, Policy(), W.tick))
    variants: list[tuple[str, Callable[[], Any]]] = [
        ("reverted", reverted),
        ("current", contextlib.nullcontext),
        ("current, gc.set_threshold(50_000, 20, 10)", gc_threshold),
    ]
    for label, cm in variants:
        with cm():
            await _gather(conc, 100)
            gc.collect()
            with GcClock() as clock:
                t0 = time.perf_counter()
                res = await _gather(conc, big_n)
                wall = time.perf_counter() - t0
            del res
            gc.collect()
        rows.append(f"  {big_n:,} concurrent 3-step runs, {label}: wall {wall:.2f} s, "
                    f"cyclic GC {clock.seconds:.2f} s in {clock.full} full collections")
    print("\n".join(rows))


def main(quick: bool = False) -> None:
    t0 = time.perf_counter()
    asyncio.run(profile_chain(1500 if quick else 4000))
    asyncio.run(reverts(3 if quick else 9))
    micro()
    asyncio.run(combined_effect(3 if quick else 5, 10_000))
    print(f"\n[profile] done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
