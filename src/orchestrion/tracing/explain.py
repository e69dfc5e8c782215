"""Blame attribution: from a failed run to the step that caused the failure.

The step that fails is often not the step at fault: a producer whose output was
"repaired" into something wrong, a reader that let untrusted content in, a vote
that went past a real disagreement.  :func:`explain` walks the provenance of the
failing step (the ``sources`` recorded on each step's envelope) back through the
run and flags every step on the way whose output

* violated a contract or a check (even if a repair then passed it),
* broke the next step's input contract,
* brought in untrusted content (where the taint entered), or
* was contested (a ``Disagreement`` between parallel branches).

The culprit is the first (most upstream) flagged step on the fault's path, else
the failing step itself.  Failures that do not depend on data (a hang, a budget
running out, an open circuit, a loop) are attributed directly: the hung step,
the agent that spent the most, the broken agent, the looping agent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrion.contracts.contract import dump_payload
from orchestrion.errors import (
    BranchesFailed,
    BudgetExceeded,
    CircuitOpen,
    ConflictUnresolved,
    ContractViolation,
    LoopBoundReached,
    LoopDetected,
    RunError,
    StepTimeout,
)
from orchestrion.runtime import events as ev
from orchestrion.runtime.records import StepRecord
from orchestrion.runtime.result import RunResult

# Failures that say nothing about the data that reached the step.
_NOT_DATA = (StepTimeout, BudgetExceeded, CircuitOpen, LoopDetected, LoopBoundReached)


@dataclass(frozen=True, slots=True)
class Suspect:
    """A step on the fault's path whose output was flagged, and why."""

    step: str
    agent: str | None
    flag: str  # "violated" | "bad-input" | "tainted" | "contested"
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Root cause of a run's outcome: where it failed, who is to blame, how the fault travelled.

    ``path`` runs from the culprit to the failing step, following provenance.
    """

    run_id: str
    status: str
    failing_step: str | None
    failing_agent: str | None
    culprit_step: str | None
    culprit_agent: str | None
    cause: str
    path: tuple[str, ...] = ()
    hint: str = ""
    error_type: str | None = None
    suspects: tuple[Suspect, ...] = ()

    def render(self) -> str:
        """Plain-text rendering (the CLI has a rich one)."""
        lines = [f"run {self.run_id}: {self.status}"]
        if self.failing_step is not None:
            lines.append(
                f"failing step: {self.failing_step} ({self.failing_agent or '-'})"
                f" {self.error_type or ''}".rstrip()
            )
        if self.culprit_step is not None:
            lines.append(f"culprit:      {self.culprit_step} ({self.culprit_agent or '-'})")
        lines.append(f"cause:        {self.cause}")
        if len(self.path) > 1:
            lines.append("path:         " + " -> ".join(self.path))
        for s in self.suspects:
            lines.append(f"  flagged {s.step}: {s.flag}: {s.detail}")
        if self.hint:
            lines.append(f"next:         {self.hint}")
        return "\n".join(lines)


def explain(result: RunResult) -> Explanation:
    """The root cause of ``result``: failing step, culprit step and agent, path, what to do."""
    if result.error is None:
        return _no_failure(result)
    err = root_error(result.error)
    trace = _Trace(result)
    if isinstance(err, _NOT_DATA):
        return _direct(result, err, trace)
    if isinstance(err, ConflictUnresolved):
        return _conflict(result, err, trace)
    return _walk(result, err, trace)


def root_error(error: RunError) -> RunError:
    """The failure behind wrappers: the first branch failure of a ``BranchesFailed``."""
    while isinstance(error, BranchesFailed) and error.failures:
        error = next(iter(error.failures.values()))
    return error


# --------------------------------------------------------------------------- the run as a graph


class _Trace:
    """Step records by key, provenance edges and the flags events put on steps."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.records: dict[str, StepRecord] = {}
        for rec in result.steps:
            self.records[rec.key] = rec
        self.flags: dict[str, list[Suspect]] = {}
        self._flag_events()

    def _flag_events(self) -> None:
        for e in self.result.events:
            if isinstance(e, ev.ContractViolated):
                errors = "; ".join(e.errors[:3])
                if e.direction == "input":
                    detail = f"its output broke the next step's input contract: {errors}"
                    self._flag(e.step, e.agent, "bad-input", detail)
                else:
                    fixed = " (then repaired)" if e.repairing else ""
                    detail = f"its output violated its contract{fixed}: {errors}"
                    self._flag(e.step, e.agent, "violated", detail)
            elif isinstance(e, ev.Disagreement):
                for source, value in e.values:
                    rec = self.records.get(source)
                    detail = f"branches disagreed on {e.field!r} at {e.step}; it said {value[:80]}"
                    self._flag(source, rec.agent if rec else None, "contested", detail)
        for rec in self.result.steps:
            if rec.target == "tool" and rec.provenance.get("trusted") is False:
                # Also flags a caller that then failed (its own record has no provenance).
                caller = rec.key.rsplit("/", 1)[0]
                detail = f"untrusted content entered through {rec.key}"
                self._flag(caller, self.agent_of(caller), "tainted", detail)
                continue
            origin = self._taint_origin(rec)
            if origin is not None:
                self._flag(rec.key, rec.agent, "tainted", origin)

    def _flag(self, step: str, agent: str | None, flag: str, detail: str) -> None:
        found = self.flags.setdefault(step, [])
        if not any(s.flag == flag for s in found):
            found.append(Suspect(step, agent, flag, detail))

    def _taint_origin(self, rec: StepRecord) -> str | None:
        """Where untrusted content entered at this step (its tool, or a tainted run input)."""
        prov = rec.provenance
        if not prov.get("tainted"):
            return None
        sources = prov.get("taint_sources", ())
        own = [t for t in sources if t.startswith(rec.key + "/")]
        if own:
            return f"untrusted content entered through {', '.join(own)}"
        if "input" in sources and not any(
            self.records.get(s) is not None and self.records[s].provenance.get("tainted")
            for s in prov.get("sources", ())
        ):
            return "it read the run input, which was marked untrusted"
        return None

    def parents(self, key: str) -> list[str]:
        """The steps whose outputs reached step ``key``."""
        rec = self.records.get(key)
        if rec is None:
            return []
        found = [s for s in rec.provenance.get("sources", ()) if s in self.records]
        if not found and not rec.ok:
            found = self._inferred_sources(rec)
        caller = key.rfind("/call[")
        if caller != -1 and key[:caller] in self.records and key[:caller] not in found:
            found.append(key[:caller])
        return found

    def _inferred_sources(self, rec: StepRecord) -> list[str]:
        """For a failed step (its envelope's sources are not recorded): the finished steps
        whose outputs appear in its input, latest first."""
        wanted = dump_payload(rec.input)
        found: list[str] = []
        seen_values: list[Any] = []
        for cand in sorted(self.result.steps, key=lambda r: -r.started_at):
            if (
                not cand.ok
                or cand.key == rec.key
                or cand.target != "agent"
                or cand.key.startswith(rec.key + "/")
                or cand.started_at > rec.started_at
            ):
                continue
            value = dump_payload(cand.output)
            if value in seen_values or not _fed(value, wanted):
                continue
            seen_values.append(value)
            found.append(cand.key)
        return found

    def upstream(self, start: str) -> tuple[dict[str, str | None], list[str]]:
        """Breadth-first ancestors of ``start``: (child of each, keys in visit order)."""
        child: dict[str, str | None] = {start: None}
        order = [start]
        queue = deque([start])
        while queue:
            key = queue.popleft()
            for parent in self.parents(key):
                if parent not in child:
                    child[parent] = key
                    order.append(parent)
                    queue.append(parent)
        return child, order

    def carried(self, suspect: Suspect, child: dict[str, str | None]) -> bool:
        """Whether a contested value travelled on: it is in what the next step on the path
        produced (or, if that step failed, received).  An outvoted answer did not."""
        if suspect.flag != "contested":
            return True
        source, nxt = (
            self.records.get(suspect.step),
            self.records.get(child.get(suspect.step) or ""),
        )
        if source is None or nxt is None:
            return True
        reached = nxt.output if nxt.ok else nxt.input
        return _appears_in(dump_payload(source.output), dump_payload(reached))

    def agent_of(self, key: str | None) -> str | None:
        rec = self.records.get(key or "")
        return rec.agent if rec else None


def _fed(output: Any, received: Any) -> bool:
    """Whether a step that received ``received`` plausibly got it from ``output``: the output
    is in the input, or (a structured input) the input was taken out of the output, as a
    worker's task input is taken out of its planner's plan."""
    if _appears_in(output, received):
        return True
    return isinstance(received, dict) and bool(received) and _appears_in(received, output)


def _appears_in(value: Any, container: Any) -> bool:
    """``value`` equals ``container``, is nested in it, or (a dict) is spread into it."""
    if value == container:
        return True
    if (
        isinstance(value, dict)
        and isinstance(container, dict)
        and value
        and all(k in container and container[k] == v for k, v in value.items())
    ):
        return True
    if isinstance(container, dict):
        return any(_appears_in(value, v) for v in container.values())
    if isinstance(container, list):
        return any(_appears_in(value, v) for v in container)
    return False


# --------------------------------------------------------------------------- attribution


def _walk(result: RunResult, err: RunError, trace: _Trace) -> Explanation:
    """Data-dependent failures: the most upstream flagged step on the fault's path."""
    failing = err.step
    if isinstance(err, ContractViolation) and err.direction == "input":
        # The runtime already blames the producer: start from it.
        trace._flag(
            failing or "",
            err.agent,
            "bad-input",
            f"its output broke the next step's input contract: {'; '.join(err.errors[:3])}",
        )
    if failing is None:
        return _simple(result, err, None, err.agent, "", [])
    child, order = trace.upstream(failing)
    flagged = [s for key in order for s in trace.flags.get(key, ()) if trace.carried(s, child)]
    upstream = [s for s in flagged if s.step != failing]
    pick = _first(upstream, trace) or _first(flagged, trace)
    culprit = pick.step if pick else failing
    path = _path(child, culprit)
    culprit_agent = (
        (pick.agent if pick else None)
        or trace.agent_of(culprit)
        or (err.agent if culprit == failing else None)
    )
    cause = f"{type(err).__name__} at {failing}: {err.message}"
    if pick is not None and culprit != failing:
        cause += f"; traced back to {culprit}: {pick.detail}"
    hint = _hint(pick, culprit, failing, err)
    return Explanation(
        result.run_id,
        result.status,
        failing,
        err.agent or trace.agent_of(failing),
        culprit,
        culprit_agent,
        cause,
        tuple(path),
        hint,
        type(err).__name__,
        tuple(s for s in flagged if s.step in path or s.step == culprit),
    )


def _first(suspects: list[Suspect], trace: _Trace) -> Suspect | None:
    """The most upstream suspect: earliest started, stronger flags first on ties."""
    strength = {"bad-input": 0, "tainted": 1, "violated": 2, "contested": 3}

    def order(s: Suspect) -> tuple[float, int]:
        rec = trace.records.get(s.step)
        return (rec.started_at if rec else float("inf"), strength.get(s.flag, 9))

    return min(suspects, key=order) if suspects else None


def _path(child: dict[str, str | None], culprit: str) -> list[str]:
    path, key = [culprit], child.get(culprit)
    while key is not None:
        path.append(key)
        key = child.get(key)
    return path


def _hint(pick: Suspect | None, culprit: str, failing: str, err: RunError) -> str:
    if pick is None or (culprit == failing and pick.flag != "bad-input"):
        return err.hint
    if pick.flag == "violated":
        return (
            f"{culprit} produced an invalid output that a repair let through; tighten its "
            f"contract checks so a wrong output cannot pass, or fix its instructions"
        )
    if pick.flag == "bad-input":
        return (
            f"fix the agent at {culprit} so its output satisfies the next step's input "
            "contract, or loosen that contract"
        )
    if pick.flag == "tainted":
        return (
            f"untrusted content entered at {culprit}; keep it out of action selection "
            "(move the action into the plan before it arrives), sanitize it, or require an "
            "approval"
        )
    return (
        f"the branches disagreed at {culprit}; the answer taken may be wrong: use "
        "merge=judge(...) or escalate(), or add voters"
    )


def _direct(result: RunResult, err: RunError, trace: _Trace) -> Explanation:
    """Failures that do not depend on data: blame where they happened (or who spent)."""
    failing, agent = err.step, err.agent or trace.agent_of(err.step)
    if isinstance(err, LoopDetected):
        return _simple(
            result, err, failing, agent, f"{err.kind} loop: {err.message}", list(err.cycle)
        )
    if isinstance(err, BudgetExceeded):
        spender, step = _top_spender(result, err.dimension)
        cause = f"{err.message}; {spender or agent!r} spent the most {err.dimension}"
        path = [k for k in (step, failing) if k]
        return Explanation(
            result.run_id,
            result.status,
            failing,
            agent,
            step or failing,
            spender or agent,
            cause,
            tuple(dict.fromkeys(path)),
            err.hint,
            type(err).__name__,
        )
    if isinstance(err, CircuitOpen):
        earlier = [
            r.key
            for r in result.steps
            if r.agent == err.target and r.status == "failed" and r.error_type != "CircuitOpen"
        ]
        return _simple(result, err, failing, agent, err.message, [*earlier, failing or ""])
    return _simple(result, err, failing, agent, err.message, [failing or ""])


def _conflict(result: RunResult, err: ConflictUnresolved, trace: _Trace) -> Explanation:
    sources = [
        src
        for e in result.events
        if isinstance(e, ev.Disagreement) and e.step == err.step
        for src, _ in e.values
    ]
    path = [*dict.fromkeys(sources), err.step or ""]
    suspects = tuple(s for k in dict.fromkeys(sources) for s in trace.flags.get(k, ()))
    return Explanation(
        result.run_id,
        result.status,
        err.step,
        None,
        err.step,
        None,
        f"{err.message}: {', '.join(dict.fromkeys(sources)) or 'no sources'}",
        tuple(path),
        err.hint,
        type(err).__name__,
        suspects,
    )


def _simple(
    result: RunResult,
    err: RunError,
    step: str | None,
    agent: str | None,
    cause: str,
    path: Iterable[str],
) -> Explanation:
    keys = tuple(dict.fromkeys(k for k in path if k)) or ((step,) if step else ())
    return Explanation(
        result.run_id,
        result.status,
        step,
        agent,
        step,
        agent,
        cause or err.message,
        keys,
        err.hint,
        type(err).__name__,
    )


def _top_spender(result: RunResult, dimension: str) -> tuple[str | None, str | None]:
    """The agent that spent the most in ``dimension``, and its most expensive step."""

    def amount(usage: Any, calls: int = 0) -> float:
        if dimension == "usd":
            return float(usage.usd)
        if dimension == "tokens":
            return float(usage.tokens)
        return float(calls)

    totals = {
        a: amount(u, result.calls_by_agent.get(a, 0)) for a, u in result.usage_by_agent.items()
    }
    if dimension in ("calls", "seconds") or not totals:
        totals = {a: float(n) for a, n in result.calls_by_agent.items()}
    if not totals:
        return None, None
    agent = max(totals, key=lambda a: totals[a])
    steps = [r for r in result.steps if r.agent == agent]
    step = max(steps, key=lambda r: amount(r.usage, r.attempts)).key if steps else None
    return agent, step


def _no_failure(result: RunResult) -> Explanation:
    if result.status == "paused":
        waiting = ", ".join(p.get("step", "?") for p in result.pending) or "a human"
        return Explanation(
            result.run_id,
            result.status,
            None,
            None,
            None,
            None,
            f"the run is paused waiting for {waiting}",
            hint="answer the pending request(s) and resume the run",
        )
    return Explanation(
        result.run_id,
        result.status,
        None,
        None,
        None,
        None,
        f"the run {result.status}; nothing to blame",
    )
