"""The run loop: validate input, open the run context, execute the flow, close the result."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orchestrion.contracts.contract import coerce, format_validation_errors
from orchestrion.cost.usage import ZERO
from orchestrion.errors import (
    ApprovalRequired,
    BudgetExceeded,
    Cancelled,
    InputError,
    RunError,
    StepTimeout,
)
from orchestrion.guards.budget import Ledger
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import Checkpoint, Journal, RunContext
from orchestrion.runtime.result import RunResult, Status
from orchestrion.runtime.scope import Scope
from orchestrion.runtime.timers import bounded
from orchestrion.security.envelope import origin

if TYPE_CHECKING:
    from orchestrion.workflow import Workflow


def new_id(prefix: str) -> str:
    """``<prefix>_`` and 20 random hex digits (80 bits; ``os.urandom`` is 5x cheaper than uuid4)."""
    return f"{prefix}_{os.urandom(10).hex()}"


def new_trace_id() -> str:
    """A W3C/OpenTelemetry-style trace id: 32 random hex digits."""
    return os.urandom(16).hex()


def validate_input(workflow: Workflow, value: Any) -> Any:
    """The run input as the workflow's input model, or InputError listing every problem."""
    model = workflow.input_model
    if model is None:
        return value
    try:
        return coerce(model, value)
    except ValidationError as exc:
        errors = format_validation_errors(exc)
        raise InputError(
            f"input for workflow {workflow.name!r} does not match {model.__name__}: "
            + "; ".join(errors[:8]),
            errors=errors,
        ) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"input for workflow {workflow.name!r} is not usable: {exc}") from None


async def execute(
    workflow: Workflow,
    value: Any,
    *,
    run_id: str | None = None,
    deps: Any = None,
    tainted: bool = False,
    journal: Journal | None = None,
    checkpoint: Checkpoint | None = None,
    answers: dict[str, Any] | None = None,
    listeners: Sequence[Callable[[ev.Event], None]] = (),
    seq_start: int = 0,
    trace_id: str | None = None,
) -> RunResult:
    """Run ``workflow`` on ``value``. Never raises for run failures: they are on the result."""
    workflow.ensure_checked()
    payload = validate_input(workflow, value)
    policy = workflow.policy
    ctx = RunContext(
        run_id=run_id or new_id("run"),
        trace_id=trace_id or new_trace_id(),
        workflow=workflow.name,
        registry=workflow.registry,
        policy=policy,
        ledger=Ledger(policy.budget, scope="run"),
        deps=deps,
        journal=journal,
        checkpoint=checkpoint,
        listeners=listeners,
        answers=answers,
        seq_start=seq_start,
    )
    ctx.emit(ev.RunStarted, run_id=ctx.run_id, workflow=workflow.name, trace_id=ctx.trace_id)
    started = time.perf_counter()
    status: Status = "failed"
    output: Any = None
    error: RunError | None = None
    root = Scope("", ctx.ledger)
    try:
        try:
            flow = workflow.flow.execute(ctx, origin(payload, tainted=tainted), root)
            if policy.run_timeout_s is not None:
                out_env = await bounded(flow, policy.run_timeout_s, started, ctx.deadlines)
            else:
                out_env = await flow
        finally:
            ctx.deadlines.close()
        output, status = out_env.payload, "succeeded"
    except ApprovalRequired:
        status = "paused"
    except Cancelled:
        status = "cancelled"
    except TimeoutError:
        limit = policy.run_timeout_s or 0.0
        step, agent = ctx.last_cancelled()
        error = StepTimeout(limit, scope="run", step=step, agent=agent)
    except RunError as exc:
        error = exc
        if isinstance(exc, BudgetExceeded) and not any(
            e.kind == "guard.tripped" for e in ctx.events[-3:]
        ):
            ctx.trip(exc)
    except Exception as exc:  # a bug must still end as a failed, journaled run, not a crash
        error = RunError(f"internal error: {type(exc).__name__}: {exc}",
                         hint="this is a bug; report it with the chained traceback")
        error.__cause__ = exc
    for guard in policy.guards:
        guard.finished(ctx)
    ctx.emit(ev.RunFinished, status=status, error=None if error is None else str(error),
             step=None if error is None else error.step)
    total = ZERO
    for u in ctx.usage_by_agent.values():
        total += u
    return RunResult(
        run_id=ctx.run_id,
        trace_id=ctx.trace_id,
        workflow=workflow.name,
        status=status,
        output=output,
        error=error,
        usage=total,
        usage_by_agent=dict(ctx.usage_by_agent),
        calls_by_agent=dict(ctx.calls_by_agent),
        steps=tuple(ctx.steps),
        events=tuple(ctx.events),
        pending=tuple(ctx.pending),
        duration_s=time.perf_counter() - started,
    )

