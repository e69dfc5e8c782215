"""Orchestration first: contracts and flow, run on stubs, then swap in agents one at a time.

Run: python examples/stub_first.py
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from orchestrion import Contract, LLMAgent, ScriptedProvider, StubAgent, Workflow, chain, parallel


class Question(BaseModel):
    text: str


class Notes(BaseModel):
    points: list[str] = Field(min_length=1)


class Notebook(BaseModel):
    web: Notes
    papers: Notes


class Answer(BaseModel):
    summary: str
    confidence: float = Field(ge=0, le=1)


FLOW = chain(parallel(web="web_search", papers="paper_search"), "writer")


def stubs() -> list[StubAgent]:
    """Step 3 of the method: every agent is a contract-derived stub."""
    return [
        StubAgent("web_search", Contract(Question, Notes), seed=1),
        StubAgent("paper_search", Contract(Question, Notes), seed=2),
        StubAgent("writer", Contract(Notebook, Answer), seed=3),
    ]


def main() -> None:
    on_stubs = Workflow(FLOW, agents=stubs(), name="research")
    report = on_stubs.check()
    assert report.ok, report.problems
    result = on_stubs.run_sync({"text": "Is MoA worth its cost?"})
    print("on stubs:", result.status, result.output)

    # Step 4: swap the writer for an LLM agent; nothing else changes.
    provider = ScriptedProvider(
        [{"summary": "Only when quality gains beat a 9x token bill.", "confidence": 0.7}],
        model="gpt-4o-mini",
    )
    writer = LLMAgent("writer", instructions="Summarize the notes.", provider=provider,
                      contract=Contract(Notebook, Answer))
    agents = [a for a in stubs() if a.name != "writer"] + [writer]
    swapped = Workflow(FLOW, agents=agents, name="research").run_sync({"text": "MoA?"})
    print("with a real writer:", swapped.status, swapped.output)
    print(f"cost: ${swapped.usage.usd:.6f} for {swapped.usage.tokens} tokens")


if __name__ == "__main__":
    main()
