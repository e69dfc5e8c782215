"""Fan-out: await labelled branches concurrently, then settle their outcomes one way.

Shared by every pattern that runs children side by side (parallel, orchestrate
workers, debate rounds, mixture layers), so they fail, keep results and pause
identically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Literal

from orchestrion.errors import ApprovalRequired, BranchesFailed, BudgetExceeded, RunError
from orchestrion.security.envelope import Envelope

OnError = Literal["fail", "keep"]


async def fan_out(
    calls: Mapping[str, Awaitable[Envelope]], *, step: str, on_error: OnError = "fail"
) -> tuple[dict[str, Envelope], dict[str, RunError]]:
    """Await every call; no failure cancels the others. Returns (results, kept failures).

    * A budget running out is raised as the :class:`BudgetExceeded` itself: the run
      hit its limit, no branch is to blame.
    * Other failures raise :class:`BranchesFailed` carrying the finished results,
      unless ``on_error="keep"`` and at least one branch succeeded.
    * An approval raised in any branch surfaces after the others have finished.
    """
    outcomes = await asyncio.gather(*calls.values(), return_exceptions=True)
    ok: dict[str, Envelope] = {}
    failures: dict[str, RunError] = {}
    pause: ApprovalRequired | None = None
    for label, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, Envelope):
            ok[label] = outcome
        elif isinstance(outcome, ApprovalRequired):
            pause = pause or outcome
        elif isinstance(outcome, RunError):
            failures[label] = outcome
        else:
            raise outcome
    spent = next((e for e in failures.values() if isinstance(e, BudgetExceeded)), None)
    if spent is not None:
        raise spent
    if failures and (on_error == "fail" or not ok):
        raise BranchesFailed(failures, {k: e.payload for k, e in ok.items()}, step=step)
    if pause is not None:
        raise pause
    return ok, failures
