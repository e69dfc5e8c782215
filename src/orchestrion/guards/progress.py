"""Progress detection: stop a loop that repeats itself, not only one that runs long.

Loop bounds (``max_rounds``, ``max_handoffs``) are counters: a stuck loop burns
its whole bound before it stops.  :class:`ProgressGuard` watches what the loop
produces and stops it at the first round that brings nothing new:

* **repeat**: inside one loop, the same agent at the same position returns the
  same output (fingerprint) for the same input as in an earlier round;
* **stalled**: a refine generator returns the draft of the previous round;
* **ping-pong**: the hand-offs of a handoff loop cycle with period 2 or more
  (A -> B -> A -> B) and every agent repeats its output;
* **recursion**: an agent delegates (``ctx.call``) down a chain that comes back
  to itself with the same input;
* **replan** / **repair**: an agent re-asked with the errors of its last output
  returns that same rejected output (an orchestrator re-planning the plan it was
  told is wrong).  Needs the choke point to report rejected outputs (``rejected``);
* **tool-repeat**: an agent calls the same tool with the same arguments and gets
  the same result again and again.  Needs the choke point to report tool calls
  (``tool_used``).

A *loop scope* is derived from the step key: the prefix up to the innermost loop
segment (``refine[3]``, ``handoff[2]``, ``debate[1]``) with its index stripped,
so every round of one loop shares a scope and two loops never do.  Steps outside
any loop are never compared, so parallel branches returning equal outputs, the
same agent at two chain positions, and a paginated agent or tool called with new
arguments are never mistaken for loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from orchestrion.errors import LoopDetected
from orchestrion.guards.fingerprint import fingerprint

if TYPE_CHECKING:
    from orchestrion.errors import RunError
    from orchestrion.runtime.context import RunContext

LOOP_KINDS = ("refine", "handoff", "debate")


@dataclass(frozen=True, slots=True)
class LoopSite:
    """Where a step sits in its innermost loop: scope, loop kind, round, position."""

    scope: str
    kind: str
    round: str
    position: str  # the rest of the key after the loop segment, e.g. "writer"

    @property
    def direct(self) -> bool:
        """True for a step of the loop itself (not a delegation or tool below one)."""
        return "/" not in self.position


def loop_site(key: str, loops: Iterable[str] = LOOP_KINDS) -> LoopSite | None:
    """The innermost loop of step ``key``, or None when the step is in no loop."""
    parts = key.split("/")
    for i in range(len(parts) - 1, -1, -1):
        seg = parts[i]
        if not seg.endswith("]"):
            continue
        base, bracket, index = seg[:-1].partition("[")
        if bracket and base in loops:
            return LoopSite("/".join([*parts[:i], base]), base, index, "/".join(parts[i + 1 :]))
    return None


@lru_cache(maxsize=4096)
def _cached_site(key: str, loops: frozenset[str]) -> LoopSite | None:
    """:func:`loop_site` memoized: the rounds of a loop reuse the same few keys."""
    return loop_site(key, loops)


@dataclass(slots=True)
class _Scope:
    """What one loop has produced so far in one run."""

    # (position, agent, output fingerprint) -> [input, key, input fingerprint or None]
    seen: dict[tuple[str, str, str], list[list[Any]]] = field(default_factory=dict)
    drafts: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)
    driver: dict[str, str] = field(default_factory=dict)
    trail: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Run:
    """Per-run state: loop scopes, inputs of running steps, rejections, tool calls."""

    scopes: dict[str, _Scope] = field(default_factory=dict)
    inputs: dict[str, tuple[str, Any]] = field(default_factory=dict)
    rejected: dict[str, tuple[str, int]] = field(default_factory=dict)
    tools: dict[tuple[str, str, str], tuple[str, int, list[str]]] = field(default_factory=dict)


class ProgressGuard:
    """A StepGuard that raises :class:`LoopDetected` when a loop stops making progress.

    ``loops`` are the segment names of loop nodes (add the ``name=`` of a loop
    node you renamed).  ``patience`` is how many unchanged refine drafts in a row
    are tolerated (0: the first unchanged draft stops the loop).  ``max_period``
    is the longest hand-off cycle looked for.  ``tool_repeats`` is how many times
    the same tool call may return the same result within one step before it is a
    loop (a model may legitimately re-fetch a result that was pruned from its
    context once).
    """

    def __init__(
        self,
        *,
        loops: Sequence[str] = LOOP_KINDS,
        patience: int = 0,
        max_period: int = 3,
        tool_repeats: int = 2,
    ) -> None:
        if patience < 0 or max_period < 2 or tool_repeats < 1:
            raise ValueError("patience >= 0, max_period >= 2 and tool_repeats >= 1 required")
        self.loops = frozenset(loops)
        self._markers = tuple(f"{name}[" for name in self.loops)
        self.patience = patience
        self.max_period = max_period
        self.tool_repeats = tool_repeats
        self._runs: dict[str, _Run] = {}

    def __repr__(self) -> str:
        return (
            f"ProgressGuard(loops={sorted(self.loops)}, patience={self.patience}, "
            f"max_period={self.max_period}, tool_repeats={self.tool_repeats})"
        )

    # ------------------------------------------------------------------ StepGuard hooks

    def before(self, ctx: RunContext, agent: str, key: str, payload: Any) -> None:
        """Remember the input of every step; refuse a delegation that recurses unchanged."""
        run = self._run(ctx)
        # A reference only: the fingerprint is computed when a cycle is suspected.
        run.inputs[key] = (agent, payload)
        if "/call[" in key:
            self._check_recursion(run, agent, key, payload)

    def failed(self, ctx: RunContext, agent: str, key: str, error: RunError) -> None:
        """Failures are not progress and not loops: nothing to record."""

    def succeeded(self, ctx: RunContext, agent: str, key: str, payload: Any, output: Any) -> None:
        """Compare the output with the loop's earlier rounds; raise when nothing changed."""
        run = self._runs.get(ctx.run_id)
        if run is not None:
            run.inputs.pop(key, None)
        for marker in self._markers:
            if marker in key:
                break
        else:
            return  # not in a loop: the common case costs a few substring tests
        site = _cached_site(key, self.loops)
        if site is None:
            return
        if run is None:
            run = self._run(ctx)
        scope = run.scopes.get(site.scope)
        if scope is None:
            scope = run.scopes[site.scope] = _Scope()
        out_fp = fingerprint(output)
        if "/" not in site.position:  # site.direct, inlined on the hot path
            if site.kind == "refine":
                self._check_stalled(scope, site, agent, key, out_fp)
            elif site.kind == "handoff":
                scope.trail.append((agent, out_fp, key))
                self._check_ping_pong(scope, site)
        self._check_repeat(scope, site, agent, key, payload, out_fp)

    def finished(self, ctx: RunContext) -> None:
        """Drop the run's state."""
        self._runs.pop(ctx.run_id, None)

    # ------------------------------------------------------------------ optional hooks

    def rejected(
        self, ctx: RunContext, agent: str, key: str, output: Any, errors: Sequence[str]
    ) -> None:
        """Called by the choke point for each output rejected by a contract or check.

        The same rejected output twice in a row at one step means the repair loop
        (an orchestrator's re-plan) makes no progress: stop it instead of re-asking.
        """
        run = self._run(ctx)
        fp = fingerprint(output)
        previous = run.rejected.get(key)
        attempt = 1 if previous is None else previous[1] + 1
        run.rejected[key] = (fp, attempt)
        if previous is None or previous[0] != fp:
            return
        replan = any(e.startswith("plan:") for e in errors)
        what = "plan" if replan else "output"
        raise LoopDetected(
            f"{agent!r} returned the {what} it was told is wrong again (attempt {attempt}): "
            + "; ".join(errors[:3]),
            kind="replan" if replan else "repair",
            cycle=(f"{key}#{attempt - 1}", f"{key}#{attempt}"),
            agents=(agent,),
            step=key,
            agent=agent,
            hint="re-asking with the same errors does not help this agent: fix its "
            "instructions, give it the missing information, or declare a fallback",
        )

    def tool_used(
        self, ctx: RunContext, agent: str, key: str, tool: str, arguments: Any, output: Any
    ) -> None:
        """Called by the choke point after each tool call made by ``agent`` at ``key``.

        Different arguments (the next page) are progress; the same arguments with
        the same result more than ``tool_repeats`` times within one step are not.
        """
        run = self._run(ctx)
        step = key.rsplit("/", 1)[0]
        call = (step, tool, fingerprint(arguments))
        out_fp = fingerprint(output)
        last = run.tools.get(call)
        if last is None or last[0] != out_fp:
            run.tools[call] = (out_fp, 1, [key])
            return
        count, keys = last[1] + 1, [*last[2], key]
        run.tools[call] = (out_fp, count, keys)
        if count > self.tool_repeats:
            raise LoopDetected(
                f"{agent!r} called tool {tool!r} with the same arguments {count} times and got "
                "the same result each time",
                kind="tool-repeat",
                cycle=keys,
                agents=(agent,),
                step=step,
                agent=agent,
                hint="tell the agent the result is already known, or lower max_tool_rounds",
            )

    # ------------------------------------------------------------------ checks

    def _run(self, ctx: RunContext) -> _Run:
        run = self._runs.get(ctx.run_id)
        if run is None:
            run = self._runs[ctx.run_id] = _Run()
        return run

    def _check_repeat(
        self, scope: _Scope, site: LoopSite, agent: str, key: str, payload: Any, out_fp: str
    ) -> None:
        """Same agent, same position, same output *and* same input as an earlier round.

        Inputs are fingerprinted only when an output repeats: a loop that makes
        progress never pays for them.
        """
        seen_key = (site.position, agent, out_fp)
        same_output = scope.seen.get(seen_key)
        if same_output is None:
            scope.seen[seen_key] = [[payload, key, None]]
            return
        in_fp = fingerprint(payload)
        for entry in same_output:
            if entry[2] is None:
                entry[2] = fingerprint(entry[0])
            if entry[2] == in_fp:
                raise _repeated(scope, site, agent, key, entry[1])
        same_output.append([payload, key, in_fp])

    def _check_stalled(
        self, scope: _Scope, site: LoopSite, agent: str, key: str, out_fp: str
    ) -> None:
        """The first step of each refine round is its generator: its draft must change."""
        driver = scope.driver.setdefault(site.round, site.position)
        if site.position != driver:
            return
        previous = scope.drafts.get(site.position)
        streak = 0
        if previous is not None and previous[0] == out_fp and _follows(previous[2], site.round):
            streak = previous[3] + 1
            if streak > self.patience:
                raise LoopDetected(
                    f"refine {site.scope!r} stalled: {agent!r} returned the same draft in "
                    f"round {site.round} as in round {previous[2]}",
                    kind="stalled",
                    cycle=(previous[1], key),
                    agents=(agent,),
                    step=key,
                    agent=agent,
                    hint="the generator ignores the evaluator's feedback: make the feedback "
                    "actionable, pass it to the generator (a 'feedback' input field), or "
                    "accept the draft",
                )
        scope.drafts[site.position] = (out_fp, key, site.round, streak)

    def _check_ping_pong(self, scope: _Scope, site: LoopSite) -> None:
        """The hand-off trail repeats its last ``p`` turns, for some period ``p >= 2``."""
        trail = scope.trail
        for period in range(2, self.max_period + 1):
            if len(trail) < 2 * period:
                return
            last = [(a, fp) for a, fp, _ in trail[-period:]]
            before = [(a, fp) for a, fp, _ in trail[-2 * period : -period]]
            agents = list(dict.fromkeys(a for a, _ in last))
            if last == before and len(agents) > 1:
                keys = [k for _, _, k in trail[-2 * period :]]
                agent, key = trail[-1][0], trail[-1][2]
                raise LoopDetected(
                    f"handoff {site.scope!r} is ping-ponging between "
                    f"{', '.join(repr(a) for a in agents)} with the same outputs",
                    kind="ping-pong",
                    cycle=keys,
                    agents=agents,
                    step=key,
                    agent=agent,
                    hint="no agent owns the task: tell one of them to answer instead of "
                    "handing off, or add the agent that can",
                )

    def _check_recursion(self, run: _Run, agent: str, key: str, payload: Any) -> None:
        """A delegation chain that returns to ``agent`` with the same input never ends."""
        fp: str | None = None
        start = key.find("/call[")
        while start != -1:
            ancestor = key[:start]
            entry = run.inputs.get(ancestor)
            if entry is not None and entry[0] == agent:
                fp = fp or fingerprint(payload)
                if fingerprint(entry[1]) == fp:
                    chain = _delegation_chain(key, ancestor)
                    raise LoopDetected(
                        f"{agent!r} delegates back to itself with the same input",
                        kind="recursion",
                        cycle=chain,
                        agents=[run.inputs[k][0] for k in chain[:-1] if k in run.inputs] + [agent],
                        step=key,
                        agent=agent,
                        hint="an agent that hands the same question back up the chain never "
                        "finishes: give the delegate a way to answer or refuse",
                    )
            start = key.find("/call[", start + 1)


def _repeated(scope: _Scope, site: LoopSite, agent: str, key: str, earlier: str) -> LoopDetected:
    """The error for a step that repeats an earlier one exactly (same input, same output).

    In a handoff the turns in between are the cycle: name every agent on it.
    """
    cycle = [earlier, key]
    trail_keys = [k for _, _, k in scope.trail]
    if site.direct and site.kind == "handoff" and earlier in trail_keys:
        cycle = trail_keys[trail_keys.index(earlier) :]
    agents = list(dict.fromkeys(a for a, _, k in scope.trail if k in cycle)) or [agent]
    if len(agents) > 1:
        return LoopDetected(
            f"handoff {site.scope!r} is going round in circles between "
            f"{', '.join(repr(a) for a in agents)}: {agent!r} got the same input again and "
            "returned the same output",
            kind="ping-pong",
            cycle=cycle,
            agents=agents,
            step=key,
            agent=agent,
            hint="no agent owns the task: tell one of them to answer instead of handing off, "
            "or add the agent that can",
        )
    return LoopDetected(
        f"{agent!r} returned the same output for the same input again in "
        f"{site.kind} {site.scope!r}",
        kind="repeat",
        cycle=cycle,
        agents=(agent,),
        step=key,
        agent=agent,
    )


def _follows(previous_round: str, current_round: str) -> bool:
    """True when ``current_round`` is the round right after ``previous_round``."""
    try:
        return int(current_round) == int(previous_round) + 1
    except ValueError:
        return False


def _delegation_chain(key: str, ancestor: str) -> list[str]:
    """Step keys from ``ancestor`` down to ``key``, one per ``call[n]`` segment."""
    chain = [ancestor]
    start = key.find("/call[", len(ancestor) + 1)
    while start != -1:
        chain.append(key[:start])
        start = key.find("/call[", start + 1)
    chain.append(key)
    return chain
