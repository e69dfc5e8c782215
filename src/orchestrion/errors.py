"""The one error tree of orchestrion.

Every error a user can see is a subclass of :class:`OrchestrionError` and says what
to do next.  Control-flow signals (a run pausing for a human, a run being
cancelled) are *not* errors: they live in their own small tree under
:class:`Signal` so that ``except OrchestrionError`` never swallows them.

::

    OrchestrionError
    ├── DefinitionError                 the workflow is wrong before it runs
    │   ├── CheckFailed                 Workflow.check() found problems (all listed)
    │   ├── ContractDefinitionError     a contract or model cannot be used as declared
    │   └── ProviderConfigError         unknown provider string, missing SDK extra
    ├── InputError                      the run input does not match the contract
    ├── RunError                        something failed while a run executed
    │   ├── UnknownName                 delegation to an agent/tool not in the registry
    │   │   ├── UnknownAgent
    │   │   └── UnknownTool
    │   ├── ContractViolation           a step's output broke its contract (after repair)
    │   ├── AgentFailed                 an agent raised (after retries)
    │   ├── ProviderError               the model provider failed
    │   │   ├── ProviderUnavailable     transient: retried with backoff
    │   │   ├── MalformedOutput         not JSON / not the schema, after repair
    │   │   ├── EmptyOutput
    │   │   ├── OutputTooLarge
    │   │   └── ScriptExhausted         a ScriptedProvider got a call it has no answer for
    │   ├── ToolRoundsExceeded          an LLM agent kept calling tools past its bound
    │   ├── StepTimeout                 a step, branch or run exceeded its wall time
    │   ├── GuardTripped                a runtime guard stopped the run
    │   │   ├── BudgetExceeded          usd / tokens / calls / seconds
    │   │   ├── LoopBoundReached        a refine/handoff/debate loop hit its bound
    │   │   ├── LoopDetected            a loop stopped making progress (names the cycle)
    │   │   ├── CircuitOpen             an agent or provider failed too often; calls refused
    │   │   ├── ContextOverflow         a request would not fit the model's context window
    │   │   └── CapabilityDenied        an agent used a tool it was not granted
    │   ├── RouteError                  a classifier picked a label with no branch
    │   ├── PlanInvalid                 an orchestrator plan failed validation
    │   ├── ConflictUnresolved          parallel outputs disagree and the merge could not decide
    │   ├── BranchesFailed              parallel branches failed (others kept results)
    │   └── ApprovalRejected            a human rejected the proposed action (or it expired)
    └── StoreError                      the journal could not be read or written
        ├── (store.errors: UnknownRun, SchemaTooNew, CorruptRecord, Approval*, ...)
        ├── RunNotResumable             the run is finished, cancelled or running elsewhere
        └── DefinitionChanged           the workflow changed since the run started

    Signal                              not an error: control flow
    ├── ApprovalRequired                a human must decide; the run pauses
    └── Cancelled                       the run was cancelled cooperatively

Run errors carry ``step`` (the deterministic step key) and ``agent`` when known,
so a failure always names where it happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class OrchestrionError(Exception):
    """Base of every orchestrion error. ``hint`` says what to do next."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        if hint is not None:
            self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        return f"{self.message}. {self.hint}" if self.hint else self.message


# --------------------------------------------------------------------------- definition


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of the static check: where, what, and how to fix it."""

    code: str
    where: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        tail = f" ({self.hint})" if self.hint else ""
        return f"[{self.code}] {self.where}: {self.message}{tail}"


class DefinitionError(OrchestrionError):
    """The workflow, a contract or a provider is declared wrongly."""


class CheckFailed(DefinitionError):
    """``Workflow.check()`` found problems; all of them are in ``problems``."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"workflow check found {len(self.problems)} problem(s):\n{lines}",
            hint="fix each problem listed; no run starts while any remains",
        )


class ContractDefinitionError(DefinitionError):
    """A contract or model cannot be used as declared."""


class ProviderConfigError(DefinitionError):
    """A provider string or provider set-up is wrong, or an SDK extra is missing."""


class InputError(OrchestrionError):
    """The run input does not satisfy the workflow's input contract."""

    def __init__(self, message: str, *, errors: Sequence[Any] = (), hint: str | None = None):
        self.errors = tuple(errors)
        super().__init__(
            message, hint=hint or "pass an input that validates against the workflow input model"
        )


# --------------------------------------------------------------------------- run errors


class RunError(OrchestrionError):
    """A failure while a run executes. ``step`` and ``agent`` name where."""

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        agent: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.step = step
        self.agent = agent
        super().__init__(message, hint=hint)

    def _render(self) -> str:
        where = []
        if self.step:
            where.append(f"step {self.step}")
        if self.agent:
            where.append(f"agent {self.agent!r}")
        prefix = f"[{', '.join(where)}] " if where else ""
        return prefix + super()._render()

    def at(self, *, step: str | None = None, agent: str | None = None) -> RunError:
        """Fill in the location if it is not known yet; returns self for ``raise``."""
        if self.step is None and step is not None:
            self.step = step
        if self.agent is None and agent is not None:
            self.agent = agent
        self.args = (self._render(),)
        return self


class UnknownName(RunError):
    """A name did not resolve in the workflow's registry."""

    kind = "name"

    def __init__(
        self,
        name: str,
        *,
        known: Iterable[str],
        caller: str | None = None,
        step: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        self.caller = caller
        by = f" requested by {caller!r}" if caller else ""
        known_txt = ", ".join(self.known) if self.known else "(none)"
        super().__init__(
            f"unknown {self.kind} {name!r}{by}; known {self.kind}s: {known_txt}",
            step=step,
            agent=caller,
            hint=hint
            or f"register {name!r} in the workflow registry, or use one of the known names",
        )


class UnknownAgent(UnknownName):
    kind = "agent"


class UnknownTool(UnknownName):
    kind = "tool"


class ContractViolation(RunError):
    """A step's input or output broke its contract and repair did not fix it."""

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[str] = (),
        direction: str = "output",
        step: str | None = None,
        agent: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.errors = tuple(errors)
        self.direction = direction
        self.attempts = attempts
        detail = "; ".join(self.errors[:5])
        super().__init__(
            f"{direction} contract violated after {attempts} attempt(s): {message}"
            + (f" [{detail}]" if detail else ""),
            step=step,
            agent=agent,
            hint="fix the producing agent (its instructions or code) or loosen the contract",
        )


class AgentFailed(RunError):
    """An agent raised an exception that was not retryable or exhausted its retries."""

    def __init__(self, message: str, *, step=None, agent=None, cause: BaseException | None = None):
        self.cause = cause
        super().__init__(
            message,
            step=step,
            agent=agent,
            hint="see the cause; make the agent raise a retryable error for transient faults",
        )


class ProviderError(RunError):
    """The model provider failed."""

    retryable = False


class ProviderUnavailable(ProviderError):
    """A transient provider failure (rate limit, 5xx, connection). Retried with backoff."""

    retryable = True


class MalformedOutput(ProviderError):
    """The model's output could not be parsed or validated, even after repair."""

    def __init__(self, message: str, *, raw: str = "", step=None, agent=None, hint=None):
        self.raw = raw[:2000]
        super().__init__(
            message,
            step=step,
            agent=agent,
            hint=hint or "tighten the instructions, raise max_repairs, or use a stronger model",
        )


class EmptyOutput(MalformedOutput):
    """The model returned nothing."""


class OutputTooLarge(ProviderError):
    """An output exceeded the size limit declared on the contract."""

    def __init__(self, size: int, limit: int, *, step=None, agent=None):
        self.size = size
        self.limit = limit
        super().__init__(
            f"output of {size} characters exceeds the limit of {limit}",
            step=step,
            agent=agent,
            hint="raise Contract(max_output_chars=...) or ask the agent for a shorter output",
        )


class ScriptExhausted(ProviderError):
    """A ScriptedProvider received a call it had no scripted response for."""


class ToolRoundsExceeded(RunError):
    """An LLM agent kept requesting tools beyond ``max_tool_rounds``."""


class StepTimeout(RunError):
    """A step, branch or run exceeded its wall-time limit."""

    def __init__(self, limit_s: float, *, scope: str = "step", step=None, agent=None):
        self.limit_s = limit_s
        self.scope = scope
        super().__init__(
            f"{scope} timed out after {limit_s:g}s",
            step=step,
            agent=agent,
            hint="raise the timeout in the policy, or find out why the agent hangs",
        )

    @property
    def retryable(self) -> bool:
        return self.scope == "step"


class GuardTripped(RunError):
    """A runtime guard stopped the run. ``limit`` and ``measured`` say by how much."""

    def __init__(self, message: str, *, guard: str, limit: Any = None, measured: Any = None,
                 step=None, agent=None, hint=None):
        self.guard = guard
        self.limit = limit
        self.measured = measured
        super().__init__(message, step=step, agent=agent, hint=hint)


class BudgetExceeded(GuardTripped):
    """A budget (usd, tokens, calls or seconds) would be or was exceeded."""

    def __init__(self, dimension: str, *, limit: float, measured: float, scope: str = "run",
                 step=None, agent=None, before_call: bool = False):
        self.dimension = dimension
        self.scope = scope
        self.before_call = before_call
        fmt = _fmt_dimension(dimension)
        verb = "would exceed" if before_call else "exceeded"
        super().__init__(
            f"{scope} budget of {fmt(limit)} {verb}: "
            f"{'projected' if before_call else 'spent'} {fmt(measured)}",
            guard="budget",
            limit=limit,
            measured=measured,
            step=step,
            agent=agent,
            hint="raise the budget in the policy, or make the flow cheaper; "
            "partial results are kept on the run result",
        )


def _fmt_dimension(dimension: str):
    if dimension == "usd":
        return lambda v: f"${v:.4f}".rstrip("0").rstrip(".") if v else "$0"
    if dimension == "seconds":
        return lambda v: f"{v:.3g}s"
    return lambda v: f"{int(v)} {dimension}"


class LoopBoundReached(GuardTripped):
    """A loop (refine, handoff, debate) reached its declared bound without stopping."""

    def __init__(self, loop: str, bound: int, *, step=None, agent=None, hint: str | None = None):
        super().__init__(
            f"{loop} reached its bound of {bound} without meeting its stop condition",
            guard="loop_bound",
            limit=bound,
            measured=bound,
            step=step,
            agent=agent,
            hint=hint or "raise the bound or relax the stop condition",
        )


class CapabilityDenied(GuardTripped):
    """An agent tried to use a tool or effect it was not granted."""


class LoopDetected(GuardTripped):
    """A loop repeats itself without progress; ``cycle`` names the steps that repeat.

    ``kind`` says how: ``"repeat"`` (same agent, same input, same output again),
    ``"stalled"`` (a refine draft equal to the previous round's), ``"ping-pong"``
    (hand-offs cycling with the same outputs), ``"replan"`` (a planner returning
    the plan it was just told was wrong), ``"recursion"`` (an agent delegating back
    to itself with the same input) or ``"tool-repeat"``.
    """

    def __init__(self, message: str, *, kind: str, cycle: Sequence[str],
                 agents: Sequence[str], step=None, agent=None, hint: str | None = None):
        self.kind = kind
        self.cycle = tuple(cycle)
        self.agents = tuple(agents)
        super().__init__(
            f"{message}; cycle: {' -> '.join(self.cycle)}",
            guard="progress",
            limit=None,
            measured=len(self.cycle),
            step=step,
            agent=agent,
            hint=hint or "the loop makes no progress: give the agents new information "
            "between rounds (feedback, results), or stop earlier",
        )


class CircuitOpen(GuardTripped):
    """Calls to an agent (or to a provider) are refused after repeated failures.

    ``target`` is the agent name or the provider id, ``failures`` the consecutive
    failures that opened the circuit, ``retry_in_s`` when the next probe call is let
    through.
    """

    def __init__(self, target: str, *, scope: str, failures: int, threshold: int,
                 retry_in_s: float, last_error: str = "", step=None, agent=None):
        self.target = target
        self.scope = scope
        self.failures = failures
        self.retry_in_s = retry_in_s
        self.last_error = last_error
        last = f" (last: {last_error})" if last_error else ""
        super().__init__(
            f"circuit for {scope} {target!r} is open after {failures} consecutive "
            f"failure(s){last}; next probe in {retry_in_s:.1f}s",
            guard="breaker",
            limit=threshold,
            measured=failures,
            step=step,
            agent=agent,
            hint=f"fix or replace {target!r}; calls resume after a successful probe",
        )


class ContextOverflow(GuardTripped):
    """A model request would exceed the model's context window (it is never sent)."""

    def __init__(self, message: str, *, limit: int, measured: int, step=None, agent=None,
                 hint: str | None = None):
        super().__init__(
            message,
            guard="context_window",
            limit=limit,
            measured=measured,
            step=step,
            agent=agent,
            hint=hint or "send typed payloads instead of transcripts, declare "
            "overflow='prune' or overflow='summarize' on the agent, lower max_tokens, "
            "or use a model with a larger window",
        )


class RouteError(RunError):
    """A classifier picked a label that has no branch and there is no default."""

    def __init__(self, label: str, *, labels: Iterable[str], step=None, agent=None):
        self.label = label
        self.labels = tuple(labels)
        super().__init__(
            f"route label {label!r} has no branch; branches: {', '.join(self.labels)}",
            step=step,
            agent=agent,
            hint="add a branch for this label, declare default=..., or constrain the "
            "classifier's output to the known labels",
        )


class PlanInvalid(RunError):
    """An orchestrator's plan failed validation before any worker started."""

    def __init__(self, problems: Sequence[str], *, step=None, agent=None):
        self.problems = tuple(problems)
        super().__init__(
            "plan rejected before any worker started: " + "; ".join(self.problems),
            step=step,
            agent=agent,
            hint="the planner is re-asked with these problems (bounded by max_replans); "
            "otherwise fix its instructions or the registry",
        )


class ConflictUnresolved(RunError):
    """Parallel outputs disagree and the merge policy could not settle it (no majority)."""

    def __init__(self, message: str, *, candidates: dict[str, Any], step=None):
        self.candidates = candidates
        super().__init__(
            message,
            step=step,
            hint="use merge=judge('agent') or escalate to a human, or add more voters",
        )


class BranchesFailed(RunError):
    """One or more parallel branches failed; ``results`` keeps the others' outputs."""

    def __init__(self, failures: dict[str, RunError], results: dict[str, Any], *, step=None):
        self.failures = failures
        self.results = results
        names = "; ".join(f"{k}: {v}" for k, v in failures.items())
        first = next(iter(failures.values()), None)
        super().__init__(
            f"{len(failures)} of {len(failures) + len(results)} concurrent branch(es) failed: "
            f"{names}",
            step=first.step if first is not None and first.step else step,
            agent=first.agent if first is not None else None,
            hint="the finished branches keep their results on the run result; "
            "use on_error='keep' to continue with the successful ones",
        )


class ApprovalRejected(RunError):
    """A human rejected the proposed action, or the request expired before a decision."""

    def __init__(self, request_id: str, *, reason: str, by: str | None, step=None, agent=None):
        self.request_id = request_id
        self.reason = reason
        self.by = by
        who = f" by {by}" if by else ""
        super().__init__(
            f"approval {request_id} was {reason}{who}",
            step=step,
            agent=agent,
            hint="the run ends here with its partial results; start a new run, or change "
            "the proposal and ask again",
        )


class StoreError(OrchestrionError):
    """The journal could not be read or written."""


class RunNotResumable(StoreError):
    """The run cannot be resumed: it finished, was cancelled, or is not paused/interrupted."""


class DefinitionChanged(StoreError):
    """The workflow definition differs from the one the run was started with."""

    def __init__(self, run_id: str, stored: str, current: str) -> None:
        self.run_id = run_id
        self.stored = stored
        self.current = current
        super().__init__(
            f"run {run_id} was started with workflow definition {stored[:12]}, "
            f"the current one is {current[:12]}",
            hint="resume with the workflow it started with, or pass force=True (--force) "
            "to replay the journal against the changed definition",
        )


# --------------------------------------------------------------------------- signals


class Signal(Exception):
    """Control flow, not failure. Never caught by ``except OrchestrionError``."""


class ApprovalRequired(Signal):
    """A human must decide before the run can go on; the run pauses."""

    def __init__(self, request_id: str, *, step: str, prompt: str = "") -> None:
        self.request_id = request_id
        self.step = step
        self.prompt = prompt
        super().__init__(f"approval {request_id} required at step {step}: {prompt}")


class Cancelled(Signal):
    """The run was cancelled cooperatively."""

    def __init__(self, reason: str = "cancelled") -> None:
        self.reason = reason
        super().__init__(reason)
