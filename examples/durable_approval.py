"""A durable run that pauses for a human before a side effect, then resumes.

Run: python examples/durable_approval.py   (uses an in-memory journal)
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from orchestrion import Policy, Workflow, agent, chain
from orchestrion.durable import Runner
from orchestrion.hitl.levels import Gate, Hitl
from orchestrion.store import MemoryStore


class Refund(BaseModel):
    order_id: str
    amount: float


@agent
def assess(r: Refund) -> Refund:
    """Cap refunds at the order total (here: 100)."""
    return Refund(order_id=r.order_id, amount=min(r.amount, 100.0))


@agent(idempotent=False)
async def pay(r: Refund, ctx) -> Refund:
    """The side effect. ctx.run_id + ctx.key is a stable idempotency key for the payment API."""
    print(f"  paying {r.amount:.2f} for {r.order_id}")
    return r


def workflow() -> Workflow:
    hitl = Hitl(level=1, gates=(Gate("pay", prompt="send this refund?"),))
    return Workflow(chain("assess", "pay"), agents=[assess, pay], policy=Policy(hitl=hitl),
                    name="refunds")


async def main() -> None:
    async with MemoryStore() as store:
        runner = Runner(store)
        paused = await runner.run(workflow(), {"order_id": "A-1042", "amount": 250})
        ask = paused.pending[0]
        print("status:", paused.status, "-", ask["prompt"], ask["input"])
        (request,) = await store.pending_approvals(paused.run_id)
        await runner.decide(request.request_id, decision="edited", by="dana",
                            edited={"order_id": "A-1042", "amount": 49.0})
        done = await runner.resume(paused.run_id, workflow())
        print("status:", done.status, "-", done.output)


if __name__ == "__main__":
    asyncio.run(main())
