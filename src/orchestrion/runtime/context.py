"""The run context and its choke point.

Every agent call and every tool call of a run passes through
:meth:`RunContext.invoke` (reached as ``ctx.call`` by patterns and as
``ctx.use`` / ``ctx.call`` by agents).  There, in this order:

1. registry lookup (unknown name: typed error naming caller, step, known names)
2. permission and taint checks (granted tools; no privileged effect from a tainted step)
3. journal replay (a completed step returns its recorded output: no call, no cost)
4. HITL checkpoint hook
5. input contract validation (a bad input is blamed on the step that produced it)
   and the policy's step guards (``before``: a circuit breaker may refuse the call)
6. per attempt: budget (calls; tokens and usd reserved per model request),
   timeout, the call itself, retry with backoff on transient faults
7. output contract validation and checks, with bounded repair (the errors go back
   to the producer as ``ctx.feedback``); step guards see every failure and every
   valid output (progress detection may stop a loop that makes none), and every
   rejected output (``rejected``) and tool call (``tool_used``) if they declare those hooks
8. events, step record, usage and cost accounting per agent and step

Nothing else in the runtime calls agents or tools.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from orchestrion.agents.tool import Tool
from orchestrion.contracts.contract import Check, coerce, format_validation_errors, payload_json
from orchestrion.cost.prices import price_of, priced
from orchestrion.cost.usage import ZERO, Usage
from orchestrion.errors import (
    AgentFailed,
    Cancelled,
    CapabilityDenied,
    ContextOverflow,
    ContractViolation,
    GuardTripped,
    OutputTooLarge,
    RunError,
    Signal,
    StepTimeout,
)
from orchestrion.guards.budget import Ledger
from orchestrion.guards.retry import Retry
from orchestrion.providers.base import (
    ModelRequest,
    ModelResponse,
    Provider,
    estimate_request_tokens,
)
from orchestrion.runtime import events as ev
from orchestrion.runtime.policy import Policy
from orchestrion.runtime.records import StepRecord
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.timers import Deadlines, bounded
from orchestrion.security.envelope import Envelope

if TYPE_CHECKING:
    from orchestrion.agents.base import AgentLike


@dataclass(frozen=True, slots=True)
class RepairFeedback:
    """Given to an agent on a repair attempt: what it produced and why it was rejected."""

    output: Any
    errors: tuple[str, ...]
    attempt: int

    def message(self) -> str:
        errs = "\n".join(f"- {e}" for e in self.errors)
        return f"Your previous output was rejected:\n{errs}\nReturn a corrected output."


class Journal(Protocol):
    """Where steps are recorded and replayed from (see ``orchestrion.runtime.journal``).

    ``replay`` returns the completed record of ``key`` for the same input, or a
    record with status ``"started"`` when a previous process began the step and
    never finished it (it may or may not have had its effect).
    """

    async def replay(self, key: str, input_fingerprint: str) -> StepRecord | None: ...

    async def started(self, key: str, agent: str, payload: Any, input_fingerprint: str) -> None:
        """Durably mark a non-idempotent step as begun, before its side effect."""

    async def record(self, record: StepRecord, input_fingerprint: str) -> None: ...

    def cancelled(self) -> bool:
        """True once the run was cancelled (checked before every call)."""


class Checkpoint(Protocol):
    """Human-in-the-loop hooks of the choke point (see ``orchestrion.hitl``).

    Each may raise ApprovalRequired (the run pauses) or ApprovalRejected; the
    returned value replaces the payload/output (a human's edit).
    """

    async def before(self, ctx: RunContext, key: str, agent: AgentLike, payload: Any) -> Any: ...

    async def after(self, ctx: RunContext, key: str, agent: AgentLike, payload: Any,
                    output: Any) -> Any: ...

    async def on_failure(self, ctx: RunContext, key: str, agent: AgentLike, payload: Any,
                         error: RunError) -> Any | None: ...

    async def confirm_rerun(self, ctx: RunContext, key: str, agent: AgentLike,
                            payload: Any) -> None: ...

    async def resolved(self, ctx: RunContext, key: str, agent: AgentLike,
                       payload: Any) -> Any | None:
        """An output a human already decided for this step and input (after a pause)."""


class RunContext:
    """Run-wide state: registry, policy, ledger, events, step records, usage per agent."""

    __slots__ = (
        "_seq",
        "answers",
        "calls_by_agent",
        "checkpoint",
        "deadlines",
        "deps",
        "events",
        "journal",
        "ledger",
        "listeners",
        "pending",
        "policy",
        "registry",
        "run_id",
        "steps",
        "trace_id",
        "usage_by_agent",
        "workflow",
    )

    def __init__(
        self,
        *,
        run_id: str,
        trace_id: str,
        workflow: str,
        registry: Registry,
        policy: Policy,
        ledger: Ledger,
        deps: Any = None,
        journal: Journal | None = None,
        checkpoint: Checkpoint | None = None,
        listeners: Sequence[Callable[[ev.Event], None]] = (),
        answers: dict[str, Any] | None = None,
        seq_start: int = 0,
    ) -> None:
        self.run_id = run_id
        self.trace_id = trace_id
        self.workflow = workflow
        self.registry = registry
        self.policy = policy
        self.ledger = ledger
        self.deps = deps
        self.journal = journal
        self.checkpoint = checkpoint
        self.listeners = list(listeners)
        self.events: list[ev.Event] = []
        self.steps: list[StepRecord] = []
        self.usage_by_agent: dict[str, Usage] = {}
        self.calls_by_agent: dict[str, int] = {}
        self.answers: dict[str, Any] = answers or {}
        self.pending: list[dict[str, Any]] = []
        self._seq = seq_start  # a resumed run continues its event log without a gap
        self.deadlines = Deadlines()  # the step and run timeouts' single loop timer

    # ------------------------------------------------------------------ events

    def emit(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        """Create, number and deliver an event."""
        self._seq += 1
        event = cls(seq=self._seq, at=time.time(), **fields)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def trip(self, err: GuardTripped) -> None:
        """Record a guard that tripped, with its limit and measured value."""
        self.emit(ev.GuardTrippedEvent, step=err.step or "", guard=err.guard,
                  message=err.message, limit=err.limit, measured=err.measured)

    def last_cancelled(self, prefix: str = "") -> tuple[str | None, str | None]:
        """(key, agent) of the latest step under ``prefix`` cancelled by a timeout, to blame it."""
        for rec in reversed(self.steps):
            if rec.status == "cancelled" and rec.key.startswith(prefix):
                return rec.key, rec.agent
        return None, None

    # ------------------------------------------------------------------ the choke point

    async def call(
        self,
        name: str,
        env: Envelope,
        *,
        key: str,
        ledger: Ledger,
        caller: str | None = None,
        checks: Sequence[Check] = (),
        max_repairs: int | None = None,
    ) -> Envelope:
        """Invoke agent ``name`` on ``env`` at step ``key``; return its output envelope."""
        agent = self.registry.agent(name, caller=caller, step=key)
        return await self.invoke(agent, env, key=key, ledger=ledger, checks=checks,
                                 max_repairs=max_repairs)

    async def invoke(
        self,
        agent: AgentLike,
        env: Envelope,
        *,
        key: str,
        ledger: Ledger,
        checks: Sequence[Check] = (),
        max_repairs: int | None = None,
    ) -> Envelope:
        name = agent.name
        contract = agent.contract
        fingerprint = ""
        journal = self.journal
        if journal is not None:
            if journal.cancelled():
                raise Cancelled(f"run {self.run_id} was cancelled before step {key}")
            fingerprint = payload_json(env.payload)
            replayed = await journal.replay(key, fingerprint)
            if replayed is not None and replayed.status == "succeeded":
                return self._replay(replayed, env, agent)
            # Begun earlier but never finished: it may have had its effect.
            interrupted = replayed is not None and not getattr(agent, "idempotent", True)
        else:
            interrupted = False
        try:
            payload = coerce(contract.input, env.payload)
        except ValidationError as exc:
            # The producer of the envelope broke the consumer's contract: blame it.
            errors = format_validation_errors(exc)
            self.emit(ev.ContractViolated, step=env.key or key, agent=env.sender,
                      direction="input", errors=tuple(errors), repairing=False)
            raise ContractViolation(
                f"{env.sender!r} produced an input that {name!r} cannot accept",
                errors=errors, direction="input", step=env.key or key, agent=env.sender,
            ) from None

        if self.checkpoint is not None:
            edited = await self.checkpoint.before(self, key, agent, payload)
            if edited is not payload:
                payload = self._coerce_edit(contract.input, edited, key, name)
            decided = await self.checkpoint.resolved(self, key, agent, payload)
            if decided is not None:  # a human already decided this step's output
                return await self._human_output(agent, env, payload, decided, key, fingerprint)
        if interrupted:
            # Never repeat a side effect blindly: a human confirms (an agent that passes
            # ctx.idempotency_key to its effect can be declared idempotent instead).
            if self.checkpoint is None:
                raise AgentFailed(f"non-idempotent step {key} was interrupted and cannot be "
                                  "confirmed without a HITL checkpoint", step=key, agent=name)
            await self.checkpoint.confirm_rerun(self, key, agent, payload)
        if journal is not None and not getattr(agent, "idempotent", True):
            await journal.started(key, name, payload, fingerprint)
        policy = self.policy
        guards = policy.guards
        for guard in guards:
            try:
                guard.before(self, name, key, payload)
            except GuardTripped as refused:
                self.trip(refused.at(step=key, agent=name))  # type: ignore[arg-type]
                self._fail(key, name, payload, 0, time.time(), ZERO, refused, env)
                raise
        retry: Retry = getattr(agent, "retry", None) or policy.retry
        timeout = getattr(agent, "timeout_s", None) or policy.step_timeout_s
        repairs_left = max_repairs if max_repairs is not None else (
            r if (r := getattr(agent, "max_repairs", None)) is not None else policy.max_repairs)
        all_checks = checks if type(checks) is tuple else tuple(checks)
        started = time.time()
        step_usage = ZERO
        attempt = 0
        failures = 0
        feedback: RepairFeedback | None = None
        while True:
            attempt += 1
            try:
                ledger.count_call(step=key, agent=name)
            except GuardTripped as tripped:
                self.trip(tripped)
                self._fail(key, name, payload, attempt - 1, started, step_usage, tripped, env)
                raise
            sctx = StepContext(self, key, name, ledger, env, feedback, attempt)
            self._seq = seq = self._seq + 1  # emit(), inlined: positional fields are cheaper
            event: ev.Event = ev.StepStarted(seq, time.time(), key, name, attempt)
            self.events.append(event)
            for listener in self.listeners:
                listener(event)
            t0 = time.perf_counter()
            try:
                if timeout is not None:
                    try:
                        raw = await bounded(agent.run(payload, sctx), timeout, t0,
                                            self.deadlines)
                    except TimeoutError:
                        raise StepTimeout(timeout, step=key, agent=name) from None
                else:
                    raw = await agent.run(payload, sctx)
            except Signal:
                if sctx.usage is not ZERO:
                    step_usage += sctx.usage
                self._account(name, sctx.usage)
                raise
            except asyncio.CancelledError:
                # Cancelled from outside (a branch/run timeout, a cancel): record it so the
                # timeout can be attributed to the step that was running.
                if sctx.usage is not ZERO:
                    step_usage += sctx.usage
                self._account(name, sctx.usage)
                self.steps.append(StepRecord(key=key, agent=name, status="cancelled",
                                             attempts=attempt, input=payload, usage=step_usage,
                                             started_at=started,
                                             duration_s=time.time() - started))
                raise
            except Exception as exc:
                if sctx.usage is not ZERO:
                    step_usage += sctx.usage
                self._account(name, sctx.usage)
                err = _as_run_error(exc, key, name)
                if isinstance(err, GuardTripped):
                    self.trip(err)
                failures += 1
                for guard in guards:
                    guard.failed(self, name, key, err)
                will_retry = not isinstance(err, GuardTripped) and retry.should_retry(err, failures)
                self.emit(ev.StepFailed, step=key, agent=name, attempt=attempt,
                          error_type=type(err).__name__, message=err.message,
                          will_retry=will_retry)
                if will_retry:
                    await asyncio.sleep(retry.delay(failures))
                    continue
                supplied = None
                if self.checkpoint is not None:  # HITL level 2: a human may supply the output
                    supplied = await self.checkpoint.on_failure(self, key, agent, payload, err)
                if supplied is None:
                    self._fail(key, name, payload, attempt, started, step_usage, err, env)
                    if err is exc:
                        raise
                    raise err from exc
                raw = supplied
            else:
                usage = sctx.usage
                calls = self.calls_by_agent  # self._account(name, usage), inlined
                calls[name] = calls.get(name, 0) + 1
                if usage is not ZERO:
                    step_usage += usage
                    if usage:
                        self.usage_by_agent[name] = self.usage_by_agent.get(name, ZERO) + usage
            failure: RunError
            out, errors = contract.validate_output(raw)
            if all_checks and out is not None and not errors:
                errors = [m for c in all_checks if (m := c.run(out)) is not None]
            if not errors and contract.max_output_chars:
                size = len(payload_json(out))
                if size > contract.max_output_chars:
                    failure = OutputTooLarge(size, contract.max_output_chars, step=key, agent=name)
                    self._fail(key, name, payload, attempt, started, step_usage, failure, env)
                    raise failure
            if errors:
                repairing = repairs_left > 0
                self.emit(ev.ContractViolated, step=key, agent=name, direction="output",
                          errors=tuple(errors), repairing=repairing)
                try:  # progress detection: the same rejected output again is no progress
                    _notify(guards, "rejected", self, name, key, raw, tuple(errors))
                except GuardTripped as stopped:
                    self.trip(stopped.at(step=key, agent=name))  # type: ignore[arg-type]
                    self._fail(key, name, payload, attempt, started, step_usage, stopped, env)
                    raise
                if repairing:
                    repairs_left -= 1
                    feedback = RepairFeedback(raw, tuple(errors), attempt)
                    continue
                failure = ContractViolation(f"{name!r} returned an invalid output",
                                            errors=errors, step=key, agent=name, attempts=attempt)
                self._fail(key, name, payload, attempt, started, step_usage, failure, env)
                raise failure
            if self.checkpoint is not None:
                edited = await self.checkpoint.after(self, key, agent, payload, out)
                if edited is not out:
                    out = self._coerce_edit(contract.output, edited, key, name)
            for guard in guards:
                try:
                    guard.succeeded(self, name, key, payload, out)
                except GuardTripped as stopped:
                    self.trip(stopped.at(step=key, agent=name))  # type: ignore[arg-type]
                    self._fail(key, name, payload, attempt, started, step_usage, stopped, env)
                    raise
            duration = time.perf_counter() - t0
            usage = sctx.usage
            self._seq = seq = self._seq + 1
            event = ev.StepFinished(seq, time.time(), key, name, attempt, duration,
                                    usage.input_tokens, usage.output_tokens, usage.usd)
            self.events.append(event)
            for listener in self.listeners:
                listener(event)
            result = env.derive(out, sender=name, key=key, extra=sctx.extra_sources,
                                tainted_by=sctx.tainted_by)
            record = StepRecord(key=key, agent=name, status="succeeded", attempts=attempt,
                                input=payload, output=out, usage=step_usage, started_at=started,
                                duration_s=time.time() - started,
                                provenance=result.provenance())
            self.steps.append(record)
            if journal is not None:
                await journal.record(record, fingerprint)
            if policy.signing_key is not None:
                result = result.signed(policy.signing_key)
            return result

    async def use_tool(self, tool: Tool, arguments: Any, *, key: str, sctx: StepContext) -> Any:
        """The choke point for tool calls; reached through ``StepContext.use``."""
        name = tool.name
        try:
            args = coerce(tool.args, arguments)
        except ValidationError as exc:
            errors = format_validation_errors(exc)
            raise ContractViolation(f"invalid arguments for tool {name!r}", errors=errors,
                                    direction="input", step=sctx.key, agent=sctx.agent) from None
        fingerprint = ""
        if self.journal is not None:
            fingerprint = payload_json(args)  # once: replay and record share it
            replayed = await self.journal.replay(key, fingerprint)
            if replayed is not None:
                self.emit(ev.StepReplayed, step=key, agent=name)
                if not tool.trusted_output:
                    sctx.tainted_by += (key,)
                return replayed.output
        sctx.ledger.count_call(step=key, agent=name)
        self.emit(ev.StepStarted, step=key, agent=name, attempt=1, target="tool")
        started = time.time()
        t0 = time.perf_counter()
        timeout = tool.timeout_s or self.policy.step_timeout_s
        try:
            if timeout is not None:
                try:
                    output = await bounded(tool.invoke(args), timeout, t0, self.deadlines)
                except TimeoutError:
                    raise StepTimeout(timeout, step=key, agent=name) from None
            else:
                output = await tool.invoke(args)
        except Signal:
            raise
        except Exception as exc:
            err = _as_run_error(exc, key, name)
            self.emit(ev.StepFailed, step=key, agent=name, attempt=1,
                      error_type=type(err).__name__, message=err.message, target="tool")
            self.steps.append(StepRecord(key=key, agent=name, status="failed", attempts=1,
                                         input=args, started_at=started, target="tool",
                                         duration_s=time.time() - started, error=str(err),
                                         error_type=type(err).__name__))
            raise err from exc
        if not tool.trusted_output:
            sctx.tainted_by += (key,)
        try:  # progress detection: the same call with the same result, again and again
            _notify(self.policy.guards, "tool_used", self, sctx.agent, key, name, args, output)
        except GuardTripped as stopped:
            self.trip(stopped.at(step=sctx.key, agent=sctx.agent))  # type: ignore[arg-type]
            raise
        self.emit(ev.StepFinished, step=key, agent=name, attempt=1,
                  duration_s=time.perf_counter() - t0, target="tool")
        record = StepRecord(key=key, agent=name, status="succeeded", attempts=1, input=args,
                            output=output, started_at=started, duration_s=time.time() - started,
                            target="tool", provenance={"trusted": tool.trusted_output,
                                                       "effects": sorted(tool.effects)})
        self.steps.append(record)
        if self.journal is not None:
            await self.journal.record(record, fingerprint)
        return output

    # ------------------------------------------------------------------ helpers

    def _replay(self, record: StepRecord, env: Envelope, agent: AgentLike) -> Envelope:
        """A completed step from the journal: its output, typed again; no call, no cost."""
        name = agent.name
        output = coerce(agent.contract.output, record.output)
        self.emit(ev.StepReplayed, step=record.key, agent=name)
        self.steps.append(StepRecord(key=record.key, agent=name, status="replayed",
                                     attempts=record.attempts, input=record.input,
                                     output=output, usage=ZERO,
                                     provenance=record.provenance))
        taint = tuple(record.provenance.get("taint_sources", ()))
        return env.derive(output, sender=name, key=record.key, tainted_by=taint)

    async def _human_output(self, agent: AgentLike, env: Envelope, payload: Any, decided: Any,
                            key: str, fingerprint: str) -> Envelope:
        """Finish a step with the output a human approved or supplied (no agent call)."""
        name = agent.name
        out = self._coerce_edit(agent.contract.output, decided, key, name)
        self.emit(ev.StepFinished, step=key, agent=name, attempt=0, duration_s=0.0)
        result = env.derive(out, sender=name, key=key)
        record = StepRecord(key=key, agent=name, status="succeeded", attempts=0, input=payload,
                            output=out, started_at=time.time(),
                            provenance={**result.provenance(), "decided_by_human": True})
        self.steps.append(record)
        if self.journal is not None:
            await self.journal.record(record, fingerprint)
        return result

    def _coerce_edit(self, model: type[BaseModel], edited: Any, key: str, name: str) -> Any:
        """A human's edit, validated like any producer's output (the human is the producer)."""
        try:
            return coerce(model, edited)
        except ValidationError as exc:
            raise ContractViolation("the human edit does not match the contract",
                                    errors=format_validation_errors(exc), step=key,
                                    agent=f"human@{name}") from None

    def _account(self, agent: str, usage: Usage) -> None:
        self.calls_by_agent[agent] = self.calls_by_agent.get(agent, 0) + 1
        if usage is not ZERO and usage:
            self.usage_by_agent[agent] = self.usage_by_agent.get(agent, ZERO) + usage

    def _fail(self, key: str, agent: str, payload: Any, attempts: int, started: float,
              usage: Usage, err: RunError, env: Envelope | None = None) -> None:
        # The input's provenance: where the fault may have come from (explain walks it).
        provenance = {} if env is None else {
            "sources": list(env.sources if env.synthetic else (env.key,) if env.key else ()),
            "tainted": env.tainted, "taint_sources": list(env.taint_sources)}
        self.steps.append(StepRecord(key=key, agent=agent, status="failed", attempts=attempts,
                                     input=payload, usage=usage, started_at=started,
                                     duration_s=time.time() - started, error=str(err),
                                     error_type=type(err).__name__, provenance=provenance))


def _notify(guards: Sequence[Any], hook: str, *args: Any) -> None:
    """Call an optional guard hook (``rejected``, ``tool_used``) on the guards that have it."""
    for guard in guards:
        method = getattr(guard, hook, None)
        if method is not None:
            method(*args)


def _as_run_error(exc: Exception, key: str, agent: str) -> RunError:
    if isinstance(exc, RunError):
        return exc.at(step=key, agent=agent)
    err = AgentFailed(f"{type(exc).__name__}: {exc}", step=key, agent=agent, cause=exc)
    err.retryable = bool(getattr(exc, "retryable", False)) or isinstance(  # type: ignore[attr-defined]
        exc, ConnectionError | TimeoutError)
    return err


class StepContext:
    """What an agent sees while it runs: its step key, deps, repair feedback, and the
    choke-point methods ``complete`` (model request), ``use`` (tool) and ``call`` (agent)."""

    __slots__ = ("_n", "agent", "attempt", "env", "extra_sources", "feedback", "key", "ledger",
                 "run", "tainted_by", "usage")

    def __init__(self, run: RunContext, key: str, agent: str, ledger: Ledger, env: Envelope,
                 feedback: RepairFeedback | None, attempt: int) -> None:
        self.run = run
        self.key = key
        self.agent = agent
        self.ledger = ledger
        self.env = env
        self.feedback = feedback
        self.attempt = attempt
        self.usage = ZERO
        self.tainted_by: tuple[str, ...] = ()
        self.extra_sources: tuple[Envelope, ...] = ()
        self._n = 0

    @property
    def deps(self) -> Any:
        """User dependencies passed to ``Workflow.run(deps=...)``."""
        return self.run.deps

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of this step: pass it to external effects."""
        return f"{self.run.run_id}:{self.key}"

    @property
    def tainted(self) -> bool:
        """True when untrusted content reached this step (its input or a tool result)."""
        return self.env.tainted or bool(self.tainted_by)

    def _child_key(self, kind: str, name: str) -> str:
        self._n += 1
        return f"{self.key}/{kind}[{self._n}]:{name}"

    async def complete(self, provider: Provider, request: ModelRequest) -> ModelResponse:
        """One model request, with the token and usd estimate reserved before and settled after."""
        est_in = estimate_request_tokens(request)
        est_out = request.settings.max_tokens
        window = getattr(provider, "context_window", None)
        if window is not None and est_in + est_out > window:
            raise ContextOverflow(
                f"request of ~{est_in} input + {est_out} output tokens exceeds the "
                f"context window of {window}", limit=window, measured=est_in + est_out,
                step=self.key, agent=self.agent)
        price = price_of(provider.model)
        usd_est = price.cost(est_in, est_out) if price is not None else 0.0
        reservation = self.ledger.reserve(usd=usd_est, tokens=est_in + est_out, step=self.key,
                                          agent=self.agent)
        try:
            response = await provider.complete(request)
        except BaseException:
            self.ledger.release(reservation)  # nothing spent; never mask the real exception
            raise
        usage = response.usage if response.usage.requests else Usage(
            response.usage.input_tokens, response.usage.output_tokens, 1, response.usage.usd)
        if not usage.usd:
            usage = priced(usage, provider.model)
        self.usage += usage
        self.ledger.settle(reservation, usage, step=self.key, agent=self.agent)
        return response

    async def use(self, tool: str, arguments: Any) -> Any:
        """Call a tool this agent was granted, through the choke point."""
        t = self.run.registry.tool(tool, caller=self.agent, step=self.key)
        agent = self.run.registry.agent(self.agent)
        granted = getattr(agent, "tools", ())
        if tool not in granted:
            err = CapabilityDenied(
                f"agent {self.agent!r} used tool {tool!r} it was not granted "
                f"(granted: {', '.join(granted) or 'none'})", guard="capability",
                step=self.key, agent=self.agent,
                hint=f"add {tool!r} to the agent's tools=[...] if it should have it")
            self.run.trip(err)
            raise err
        if t.privileged and self.tainted:
            taint = ", ".join(self.env.taint_sources + self.tainted_by)
            err = CapabilityDenied(
                f"tool {tool!r} has privileged effects ({', '.join(sorted(t.effects))}) and "
                f"was requested in a step tainted by {taint}",
                guard="taint", step=self.key, agent=self.agent,
                hint="untrusted content may carry data but not select actions; move the "
                "action into the plan before the untrusted data arrives, or require approval")
            self.run.trip(err)
            raise err
        return await self.run.use_tool(t, arguments, key=self._child_key("tool", tool), sctx=self)

    async def call(self, agent: str, payload: Any) -> Any:
        """Delegate to another agent through the choke point; returns its validated output."""
        key = self._child_key("call", agent)
        env = self.env.derive(payload, sender=self.agent, key=self.key, recipient=agent,
                              tainted_by=self.tainted_by)
        out = await self.run.call(agent, env, key=key, ledger=self.ledger, caller=self.agent)
        self.extra_sources += (out,)
        if out.tainted:  # what a delegate read taints this step too, before it acts on it
            self.tainted_by += tuple(t for t in out.taint_sources if t not in self.tainted_by)
        return out.payload

    def output_model(self) -> type[BaseModel]:
        """The output model of the running agent's contract."""
        return self.run.registry.agent(self.agent).contract.output
