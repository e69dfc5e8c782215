"""Spend approval: pause for a human before the run's projected spend crosses a threshold.

Budgets stop a run at a hard limit.  Below it there is often a soft one: "above
$0.50 a person should look before we go on".  :class:`SpendApproval` is a
StepGuard that, before each agent step, projects the run's spend (what the run
ledger has spent plus an estimate of this step) and, when the projection crosses
the threshold, records a pending approval request (the same shape the human
agent records) and pauses the run with :class:`~orchestrion.errors.ApprovalRequired`.

Resume by re-running with ``answers={"<step>#spend": answer}``:

* ``True`` or ``{"approve": True}``: go on; no further approval this run, unless
  ``every_usd`` / ``every_tokens`` ask again each time that much more is projected;
* ``{"approve": True, "up_to_usd": 2.0}``: go on until the projection crosses $2;
* ``False`` or ``{"approve": False}``: stop the run with
  :class:`~orchestrion.errors.BudgetExceeded` (partial results and spend kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrion.agents.human import request_id_for
from orchestrion.contracts.contract import payload_json
from orchestrion.cost.prices import price_of
from orchestrion.cost.usage import Usage
from orchestrion.errors import ApprovalRequired, BudgetExceeded
from orchestrion.providers.base import estimate_tokens
from orchestrion.runtime import events as ev

if TYPE_CHECKING:
    from orchestrion.errors import RunError
    from orchestrion.runtime.context import RunContext

Estimator = Callable[[Any, Any], Usage]
"""``(agent, payload) -> Usage``: the expected spend of one step of ``agent``."""

SUFFIX = "#spend"


def one_request(agent: Any, payload: Any) -> Usage:
    """Estimate of one model request of an LLM agent on ``payload``; zero for other agents.

    The prompt is the agent's instructions and schema plus the payload (one token
    per 4 characters), the answer is at most ``settings.max_tokens``.
    """
    provider = getattr(agent, "provider", None)
    settings = getattr(agent, "settings", None)
    if provider is None or settings is None:
        return Usage()
    system = getattr(agent, "_system", "") or getattr(agent, "instructions", "")
    tokens_in = estimate_tokens(system) + estimate_tokens(payload_json(payload)) + 8
    tokens_out = int(settings.max_tokens)
    price = price_of(getattr(provider, "model", ""))
    usd = price.cost(tokens_in, tokens_out) if price is not None else 0.0
    return Usage(tokens_in, tokens_out, 1, usd)


@dataclass(slots=True)
class _Ceiling:
    usd: float | None
    tokens: int | None


class SpendApproval:
    """A StepGuard that asks a human before the projected run spend crosses ``usd`` / ``tokens``.

    ``estimate`` gives the expected spend of a step (default :func:`one_request`).
    ``every_usd`` / ``every_tokens``: after an approval, ask again when the
    projection grows by that much more (default: never again in this run).
    """

    def __init__(
        self,
        *,
        usd: float | None = None,
        tokens: int | None = None,
        every_usd: float | None = None,
        every_tokens: int | None = None,
        estimate: Estimator = one_request,
        prompt: str = "",
    ) -> None:
        if usd is None and tokens is None:
            raise ValueError("SpendApproval needs a threshold: usd=... and/or tokens=...")
        self.usd = usd
        self.tokens = tokens
        self.every_usd = every_usd
        self.every_tokens = every_tokens
        self.estimate = estimate
        self.prompt = prompt
        self._ceilings: dict[str, _Ceiling] = {}

    def __repr__(self) -> str:
        return f"SpendApproval(usd={self.usd}, tokens={self.tokens})"

    # ------------------------------------------------------------------ StepGuard hooks

    def before(self, ctx: RunContext, agent: str, key: str, payload: Any) -> None:
        """Pause (or stop, if a human said no) when the projected spend crosses the ceiling."""
        ceiling = self._ceilings.get(ctx.run_id)
        if ceiling is None:
            ceiling = self._ceilings[ctx.run_id] = _Ceiling(self.usd, self.tokens)
        step_cost = self.estimate(ctx.registry.agent(agent), payload)
        spent = ctx.ledger.spent
        usd, tokens = spent.usd + step_cost.usd, spent.tokens + step_cost.tokens
        over = _crossed(ceiling, usd, tokens)
        if over is None:
            return
        request = key + SUFFIX
        if request in ctx.answers:
            self._answered(ctx, ceiling, ctx.answers[request], usd, tokens, over, key, agent)
            return
        self._ask(ctx, request, key, agent, usd, tokens, over)

    def failed(self, ctx: RunContext, agent: str, key: str, error: RunError) -> None:
        """Nothing to do: spend is read from the ledger."""

    def succeeded(self, ctx: RunContext, agent: str, key: str, payload: Any, output: Any) -> None:
        """Nothing to do: spend is read from the ledger."""

    def finished(self, ctx: RunContext) -> None:
        """Drop the run's approved ceiling."""
        self._ceilings.pop(ctx.run_id, None)

    # ------------------------------------------------------------------ helpers

    def _ask(
        self,
        ctx: RunContext,
        request: str,
        key: str,
        agent: str,
        usd: float,
        tokens: int,
        over: tuple[str, float, float],
    ) -> None:
        dimension, limit, measured = over
        shown = f"${measured:.4f}" if dimension == "usd" else f"{int(measured)} tokens"
        cap = f"${limit:.4f}" if dimension == "usd" else f"{int(limit)} tokens"
        prompt = self.prompt or (
            f"Projected spend {shown} crosses the approval threshold of "
            f"{cap} before step {key} ({agent!r}). Continue?"
        )
        request_id = request_id_for(ctx.run_id, request)
        ctx.pending.append(
            {
                "request_id": request_id,
                "step": request,
                "agent": agent,
                "prompt": prompt,
                "payload": {
                    "step": key,
                    "agent": agent,
                    "projected_usd": round(usd, 8),
                    "projected_tokens": tokens,
                    "spent": ctx.ledger.spent.to_dict(),
                    "threshold": {dimension: limit},
                },
                "answer_schema": {
                    "anyOf": [
                        {"type": "boolean"},
                        {
                            "type": "object",
                            "properties": {
                                "approve": {"type": "boolean"},
                                "up_to_usd": {"type": "number"},
                                "up_to_tokens": {"type": "integer"},
                            },
                            "required": ["approve"],
                        },
                    ]
                },
            }
        )
        ctx.emit(ev.ApprovalRequested, step=request, request_id=request_id, prompt=prompt)
        raise ApprovalRequired(request_id, step=request, prompt=prompt)

    def _answered(
        self,
        ctx: RunContext,
        ceiling: _Ceiling,
        answer: Any,
        usd: float,
        tokens: int,
        over: tuple[str, float, float],
        key: str,
        agent: str,
    ) -> None:
        approved = answer.get("approve") if isinstance(answer, dict) else answer
        if approved is not True:
            dimension, limit, measured = over
            err = BudgetExceeded(
                dimension,
                limit=limit,
                measured=measured,
                scope="spend approval (declined)",
                step=key,
                agent=agent,
                before_call=True,
            )
            raise err  # the choke point records the trip and the failed step
        extra = answer if isinstance(answer, dict) else {}
        ceiling.usd = _raised(ceiling.usd, usd, extra.get("up_to_usd"), self.every_usd)
        ceiling.tokens = _raised(
            ceiling.tokens, tokens, extra.get("up_to_tokens"), self.every_tokens
        )


def _crossed(ceiling: _Ceiling, usd: float, tokens: int) -> tuple[str, float, float] | None:
    """(dimension, limit, projected) of the first ceiling the projection crosses, if any."""
    if ceiling.usd is not None and usd > ceiling.usd + 1e-12:
        return "usd", ceiling.usd, usd
    if ceiling.tokens is not None and tokens > ceiling.tokens:
        return "tokens", ceiling.tokens, tokens
    return None


def _raised(current: Any, projected: float, up_to: Any, every: Any) -> Any:
    """The ceiling after an approval: an explicit ``up_to``, one more ``every``, or none."""
    if current is None:
        return None
    if up_to is not None:
        return up_to
    if every is not None:
        return projected + every
    return None
