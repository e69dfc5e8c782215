"""Where orchestrion's per-step time goes, and what candidate src/ changes would save.

Run: ``bash bench/run.sh --profile`` (after the figures) or
``bench/.venv/bin/python bench/profile_hotpath.py``.

1. cProfile of the 5-step chain under the default policy (self time per function).
2. Ablations: each candidate change is simulated *in this process only* by
   monkeypatching (src/ is never edited) and timed interleaved against the
   unpatched runtime on the 5-step chain.  The saving is per run and per step.
   Patches that remove a feature (no step timer, no size check, no events) give
   the upper bound of what a cheaper implementation of that feature can save.
3. Micro-costs of the building blocks (frozen vs plain dataclass, timers, ids, ...).
4. All behaviour-preserving patches at once, on the chain, the fan-out, the refine
   loop and 10,000 concurrent runs (wall time and time in the cyclic GC).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import io
import os
import pstats
import sys
import time
import timeit
from collections import namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
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
chain_mod = _module("orchestrion.patterns.chain")
step_mod = _module("orchestrion.patterns.step")
context_mod = _module("orchestrion.runtime.context")
ev = _module("orchestrion.runtime.events")
run_mod = _module("orchestrion.runtime.run")
envelope_mod = _module("orchestrion.security.envelope")
try:
    refine_mod = _module("orchestrion.patterns.refine")
except ImportError:  # pragma: no cover - refine not written yet
    refine_mod = None

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


def _thaw(cls: type) -> type:
    """The same dataclass, not frozen (plain slot stores instead of object.__setattr__)."""
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
    return dataclasses.make_dataclass(cls.__name__, spec, slots=True, namespace=ns)


def _tuple_event(cls: type) -> type:
    """The same event as a namedtuple: immutable, and untracked by the GC once it is old."""
    fs = dataclasses.fields(cls)
    defaults = [f.default for f in fs if f.default is not dataclasses.MISSING]
    base = namedtuple(cls.__name__, [f.name for f in fs], defaults=defaults or None)
    return type(cls.__name__, (base,), {"__slots__": (), "kind": cls.kind})


EVENT_NAMES = ("RunStarted", "RunFinished", "StepStarted", "StepFinished", "Decision")


def events_as(factory: Callable[[type], type]) -> list[tuple[Any, str, Any]]:
    return [(ev, n, factory(getattr(ev, n))) for n in EVENT_NAMES]


_orig_derive = Envelope.derive
_new_env = Envelope


def fast_derive(self: Envelope, payload: Any, *, sender: str, key: str,
                recipient: str | None = None, extra: tuple = (),
                tainted_by: tuple = ()) -> Envelope:
    """Envelope.derive with a fast path for the common case (no extra sources, no new taint)."""
    if extra or tainted_by:
        return _orig_derive(self, payload, sender=sender, key=key, recipient=recipient,
                            extra=extra, tainted_by=tainted_by)
    taint = self.taint_sources
    return _new_env(payload, sender, key, recipient, (self.key,) if self.key else (),
                    bool(taint), taint)


_orig_payload_json = contract_mod.payload_json


def fast_payload_json(value: Any) -> str:
    """payload_json through the model's serializer (model_dump_json's wrapper is ~3x slower)."""
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value).decode()
    return _orig_payload_json(value)


def usage_factory(*args: Any, **kw: Any) -> Usage:
    """Usage() -> the shared immutable ZERO instead of a new object."""
    return Usage(*args, **kw) if args or kw else ZERO


fast_uuid = SimpleNamespace(uuid4=lambda: SimpleNamespace(hex=os.urandom(16).hex()))


async def flat_step_run(self: Any, ctx: Any, env: Any, scope: Any) -> Any:
    """Step.run calling the choke point's invoke directly (one coroutine frame less)."""
    agent = ctx.registry.agent(self.agent)
    return await ctx.invoke(agent, env, key=scope.prefix + self.agent, ledger=scope.ledger)


async def flat_chain_run(self: Any, ctx: Any, env: Any, scope: Any) -> Any:
    """Chain.run skipping Node.execute for children without budget/timeout (one frame less)."""
    label = self.label
    for i, node in enumerate(self.steps):
        child = scope.enter(f"{label}[{i}]")
        if node.budget is None and node.timeout_s is None:
            env = await node.run(ctx, env, child)
        else:
            env = await node.execute(ctx, env, child)
    return env


def _identity(x: Any) -> Any:
    return x


# (name, patches, note); a "policy:" / "agents:" entry changes the workflow instead.
SAFE = "same behaviour"
ABLATIONS: list[tuple[str, Any, str]] = [
    ("no step timer (Policy.step_timeout_s=None)", "policy:step", "upper bound of a cheaper timer"),
    ("no run timer (Policy.run_timeout_s=None)", "policy:run", "per run"),
    ("events not frozen (plain slots dataclass)", events_as(_thaw), SAFE),
    ("events as namedtuples", events_as(_tuple_event), "immutable; GC-untracked"),
    ("StepRecord not frozen", [(context_mod, "StepRecord", _thaw(StepRecord))], SAFE),
    ("Envelope.derive fast path", [(Envelope, "derive", fast_derive)], SAFE),
    ("payload_json via __pydantic_serializer__", [(context_mod, "payload_json",
                                                   fast_payload_json)], SAFE),
    ("no output size check (max_output_chars=0)", "agents:nosize", "upper bound"),
    ("Usage() -> shared ZERO", [(context_mod, "Usage", usage_factory)], SAFE),
    ("run/trace ids from os.urandom, not uuid4", [(run_mod, "uuid", fast_uuid)], SAFE),
    ("one coroutine frame less in Step and Chain", [(step_mod.Step, "run", flat_step_run),
                                                   (chain_mod.Chain, "run", flat_chain_run)],
     SAFE),
    ("no step events at all (emit is a no-op)", [(context_mod.RunContext, "emit",
                                                  lambda self, cls, **f: None)], "upper bound"),
]

COMBINED = [p for name, p, note in ABLATIONS if isinstance(p, list) and note == SAFE
            and "events" not in name] + [events_as(_tuple_event)]
COMBINED_NOTE = ("events as namedtuples + StepRecord not frozen + Envelope.derive fast path + "
                 "payload_json via the serializer + Usage ZERO + os.urandom ids + one frame "
                 "less per step")


@contextlib.contextmanager
def combined() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for p in COMBINED:
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


async def ablations(trials: int) -> None:
    section("ablations on the 5-step chain (default policy): saving vs the unpatched runtime, "
            "timed interleaved; each row alone")
    ref = W.orch_runner(W.orch_chain(5, Policy()))
    base = W.baseline_chain(5)
    results: list[tuple[str, float, float, str]] = []
    for name, p, note in ABLATIONS:
        if p == "policy:step":
            cand_fn = W.orch_runner(W.orch_chain(5, Policy(step_timeout_s=None)))
        elif p == "policy:run":
            cand_fn = W.orch_runner(W.orch_chain(5, Policy(run_timeout_s=None)))
        elif p == "agents:nosize":
            from orchestrion.agents.function import agent as as_agent
            from orchestrion.patterns.chain import chain
            from orchestrion.workflow import Workflow

            ags = [as_agent(W.work, name=f"s{i}", max_output_chars=0) for i in range(5)]
            cand_fn = W.orch_runner(Workflow(chain(*(a.name for a in ags)), agents=ags,
                                             policy=Policy()))
        else:
            cand_fn = ref
        # reference and candidate alternate trial by trial; the patch is on only for the candidate
        ref_t: list[float] = []
        cand_t: list[float] = []
        for _ in range(trials):
            ref_t += (await compare({"ref": ref}, trials=1, target_s=0.12))["ref"]
            with patched(*p) if isinstance(p, list) else contextlib.nullcontext():
                cand_t += (await compare({"cand": cand_fn}, trials=1, target_s=0.12))["cand"]
        saved = med(ref_t) - med(cand_t)
        results.append((name, saved, saved / 5, note))
    b = await compare({"b": base, "r": ref}, trials=3, target_s=0.12)
    ovh = med(b["r"]) - med(b["b"])
    print(f"  reference: {med(b['r']) * 1e6:.1f} µs/run, baseline {med(b['b']) * 1e6:.1f} µs/run, "
          f"overhead {ovh * 1e6:.1f} µs/run = {ovh / 5 * 1e6:.1f} µs/step")
    print(f"  {'saved µs/run':>12}  {'µs/step':>7}  {'% of ovh':>8}  change  [note]")
    for name, saved, per_step, note in sorted(results, key=lambda r: -r[1]):
        print(f"  {saved * 1e6:12.1f}  {per_step * 1e6:7.2f}  {saved / ovh * 100:7.0f}%  "
              f"{name}  [{note}]")


def micro() -> None:
    section("micro-costs (best of 5, µs per operation)")
    d = W.Doc(topic="x", notes=["a", "b"])
    big = W.Doc(topic="x" * 2000, notes=["n" * 200] * 40)
    env = envelope_mod.origin(d)
    thawed_sf = _thaw(ev.StepFinished)
    tuple_sf = _tuple_event(ev.StepFinished)
    thawed_rec = _thaw(StepRecord)
    g = {**globals(), "d": d, "big": big, "env": env, "ev": ev, "thawed_sf": thawed_sf,
         "tuple_sf": tuple_sf, "thawed_rec": thawed_rec, "u": ZERO}
    sf = ("(seq=1, at=1.0, step='k', agent='a', attempt=1, duration_s=0.1, input_tokens=0, "
          "output_tokens=0, usd=0.0)")
    rec = ("(key='k', agent='a', status='succeeded', attempts=1, input=d, output=d, usage=u, "
           "started_at=1.0, duration_s=0.1, provenance={})")
    cases = [
        ("StepFinished frozen dataclass", "ev.StepFinished" + sf),
        ("StepFinished plain slots dataclass", "thawed_sf" + sf),
        ("StepFinished namedtuple", "tuple_sf" + sf),
        ("StepRecord frozen", "StepRecord" + rec),
        ("StepRecord plain", "thawed_rec" + rec),
        ("Envelope.derive", "env.derive(d, sender='a', key='k')"),
        ("Envelope.derive fast path", "fast_derive(env, d, sender='a', key='k')"),
        ("env.provenance() dict", "env.provenance()"),
        ("payload_json(small model)", "_orig_payload_json(d)"),
        ("serializer.to_json(small model)", "d.__pydantic_serializer__.to_json(d)"),
        (f"payload_json({len(big.model_dump_json()) // 1024} KB model)", "_orig_payload_json(big)"),
        ("Usage()", "Usage()"),
        ("uuid.uuid4().hex", "__import__('uuid').uuid4().hex"),
        ("os.urandom(16).hex()", "os.urandom(16).hex()"),
    ]
    task = W.Task(topic="benchmarks", notes=["start"])
    draft = W.Draft(text="benchmarks v3", version=3)
    g.update(task=task, draft=draft, dump=contract_mod.dump_payload, EvalIn=W.EvalIn,
             Task=W.Task, tbase=task.model_dump())
    cases += [
        ("refine review as refine builds it: dump_payload both + EvalIn validate",
         "EvalIn.model_validate({'input': dump(task), 'draft': dump(draft), 'round': 3})"),
        ("refine review from the models themselves + EvalIn validate",
         "EvalIn.model_validate({'input': task, 'draft': draft, 'round': 3})"),
        ("refine revision as built: dump input and draft + Task validate",
         "Task.model_validate({**dump(task), 'feedback': 'f', 'previous': dump(draft)})"),
        ("refine revision, input dumped once per run, draft passed as model",
         "Task.model_validate({**tbase, 'feedback': 'f', 'previous': draft})"),
    ]
    envs = [env.derive(d, sender="w", key=f"parallel[{i}]/w") for i in range(100)]
    g.update(first=envs[0], rest=tuple(envs[1:]))
    cases.append(("Collect merge: derive(extra=99 envelopes), quadratic tuple building",
                  "first.derive(d, sender='parallel', key='parallel', extra=rest)"))
    for label, stmt in cases:
        n = 20000 if "extra=" not in stmt else 500
        t = min(timeit.repeat(stmt, globals=g, number=n, repeat=5)) / n
        print(f"  {t * 1e6:7.3f}  {label}")
    asyncio.run(_timer_micro())


async def _nop() -> None:
    return None


def _fire(task: asyncio.Task, box: list) -> None:
    box[0] = True
    task.cancel()


async def _t_none() -> None:
    await _nop()


async def _t_asyncio_timeout() -> None:
    async with asyncio.timeout(120):
        await _nop()


async def _t_call_at() -> None:
    loop = asyncio.get_running_loop()
    box = [False]
    h = loop.call_at(loop.time() + 120, _fire, asyncio.current_task(), box)
    try:
        await _nop()
    finally:
        h.cancel()


_DEADLINES: dict[Any, float] = {}


async def _t_deadline_map() -> None:
    t = asyncio.current_task()
    _DEADLINES[t] = time.monotonic() + 120
    try:
        await _nop()
    finally:
        del _DEADLINES[t]


async def _timer_micro() -> None:
    for label, f in (("no step timer", _t_none), ("asyncio.timeout(120)", _t_asyncio_timeout),
                     ("loop.call_at + handle.cancel", _t_call_at),
                     ("deadline map + one watchdog task (insert/delete only)", _t_deadline_map)):
        best = float("inf")
        for _ in range(5):
            n = 50000
            t0 = time.perf_counter()
            for i in range(n):
                await f()
                if not i & 31:
                    await asyncio.sleep(0)
            best = min(best, (time.perf_counter() - t0) / n)
        print(f"  {best * 1e6:7.3f}  per step: {label}")


async def combined_effect(trials: int, big_n: int) -> None:
    section("all behaviour-preserving patches at once: " + COMBINED_NOTE)
    rows = []
    for label, make, base in (
        ("5-step chain, default policy", lambda: W.orch_chain(5, Policy()), W.baseline_chain(5)),
        ("5-step chain, no timeouts", lambda: W.orch_chain(5, W.POLICIES["orch_nt"]),
         W.baseline_chain(5)),
    ):
        fn = W.orch_runner(make())
        b, r, c = [], [], []
        for _ in range(trials):
            x = await compare({"b": base, "r": fn}, trials=1, target_s=0.12)
            with combined():
                y = await compare({"c": fn}, trials=1, target_s=0.12)
            b += x["b"]
            r += x["r"]
            c += y["c"]
        ob, oc = (med(r) - med(b)) / 5, (med(c) - med(b)) / 5
        rows.append(f"  {label}: overhead/step {ob * 1e6:.1f} -> {oc * 1e6:.1f} µs "
                    f"(-{(1 - oc / ob) * 100:.0f}%)")
    fan = W.orch_runner(W.orch_fanout(100, Policy()))
    fan_nt = W.orch_runner(W.orch_fanout(100, Policy(step_timeout_s=None)))
    r, c, cn = [], [], []
    for _ in range(max(3, trials)):
        r += (await compare({"r": fan}, trials=1, target_s=0, reps=5))["r"]
        with combined():
            y = await compare({"c": fan, "cn": fan_nt}, trials=1, target_s=0, reps=5)
        c += y["c"]
        cn += y["cn"]

    def pct(xs: list[float]) -> str:
        return f"{med(xs) * 1e3:.2f} ms ({(med(xs) / W.FANOUT_SLEEP_S - 1) * 100:+.1f}%)"

    rows.append(f"  100-way fan-out x 50 ms: default policy {pct(r)} -> patched {pct(c)}; "
                f"patched and no step timer {pct(cn)}")
    wf = W.orch_refine(Policy())
    if wf is not None:
        fn = W.orch_runner(wf)
        r, c = [], []
        for _ in range(trials):
            r += (await compare({"r": fn}, trials=1, target_s=0.15))["r"]
            with combined():
                c += (await compare({"c": fn}, trials=1, target_s=0.15))["c"]
        rows.append(f"  50-round refine, default policy: {med(r) * 1e3:.2f} -> "
                    f"{med(c) * 1e3:.2f} ms per run ({(med(r) - med(c)) / 50 * 1e6:.1f} µs "
                    "saved per round)")
    conc = W.orch_runner(W.orch_chain(3, Policy(), W.tick))
    variants: list[tuple[str, Callable[[], Any]]] = [
        ("unpatched", contextlib.nullcontext),
        ("patched", combined),
        ("unpatched, gc.set_threshold(50_000, 20, 10)", gc_threshold),
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
    asyncio.run(ablations(3 if quick else 9))
    micro()
    asyncio.run(combined_effect(3 if quick else 5, 10_000))
    print(f"\n[profile] done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
