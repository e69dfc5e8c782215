"""The public front door is small and deliberate: adding or removing a name is a decision."""

import orchestrion

EXPECTED = {
    "Budget", "Contract", "HumanAgent", "LLMAgent", "OrchestrionError", "Policy", "Retry",
    "RunResult", "ScriptedProvider", "StubAgent", "Workflow", "agent", "chain", "debate",
    "handoff", "judge", "mixture", "orchestrate", "parallel", "refine", "route", "tool", "vote",
}


def test_front_door_is_pinned():
    assert set(orchestrion.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(orchestrion, name) is not None


def test_run_sync_runs_the_async_core():
    from pydantic import BaseModel

    class Q(BaseModel):
        text: str

    @orchestrion.agent
    def shout(q: Q) -> Q:
        return Q(text=q.text.upper())

    result = orchestrion.Workflow("shout", agents=[shout]).run_sync({"text": "hi"})
    assert isinstance(result, orchestrion.RunResult)
    assert result.ok and result.output.text == "HI"
