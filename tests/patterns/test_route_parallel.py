"""Route and parallel: decisions, unknown labels, defaults, merges, failing branches, approvals."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from orchestrion.agents.human import HumanAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.errors import BranchesFailed, ConflictUnresolved, RouteError
from orchestrion.patterns.chain import chain
from orchestrion.patterns.merge import judge, vote
from orchestrion.patterns.parallel import parallel
from orchestrion.patterns.route import route
from orchestrion.workflow import Workflow


class Q(BaseModel):
    text: str


class Label(BaseModel):
    label: str
    reason: str = ""


class Kind(StrEnum):
    billing = "billing"
    tech = "tech"


class Typed(BaseModel):
    label: Kind


class A(BaseModel):
    answer: str
    score: int = 0


class Candidates(BaseModel):
    candidates: list[A]
    labels: list[str]


def s(name, inp=Q, out=A, script=(), **kw):
    return StubAgent(name, Contract(inp, out), script=script, **kw)


async def test_route_records_decision_and_runs_one_branch():
    triage = s("triage", out=Label, script=[{"label": "tech", "reason": "mentions a crash"}])
    billing, tech = s("billing"), s("tech", script=[{"answer": "reboot"}])
    wf = Workflow(route("triage", {"billing": "billing", "tech": "tech"}),
                  agents=[triage, billing, tech])
    result = await wf.run({"text": "app crashes"})
    assert result.output == A(answer="reboot")
    assert billing.calls == 0 and tech.inputs == [Q(text="app crashes")]
    (decision,) = result.events_of("decision")
    assert decision.chosen == ("tech",) and decision.rejected == ("billing",)
    assert decision.reason == "mentions a crash"
    assert [st.key for st in result.steps] == ["route/triage", "route[tech]/tech"]


async def test_unknown_label_is_a_typed_error():
    triage = s("triage", out=Label, script=[{"label": "sales"}])
    wf = Workflow(route("triage", {"billing": "billing"}), agents=[triage, s("billing")])
    result = await wf.run({"text": "x"})
    err = result.error
    assert isinstance(err, RouteError) and err.label == "sales" and err.labels == ("billing",)
    assert err.step == "route/triage" and err.agent == "triage"


async def test_unknown_label_goes_to_declared_default():
    triage = s("triage", out=Label, script=[{"label": "sales"}])
    general = s("general", script=[{"answer": "general help"}])
    wf = Workflow(route("triage", {"billing": "billing", "general": "general"},
                        default="general"), agents=[triage, s("billing"), general])
    result = await wf.run({"text": "x"})
    assert result.output.answer == "general help"
    assert "default 'general'" in result.events_of("decision")[0].reason


async def test_function_classifier_and_enum_labels():
    wf = Workflow(route(lambda q: "tech" if "crash" in q.text else "billing",
                        {"billing": "billing", "tech": "tech"}),
                  agents=[s("billing", script=[{"answer": "b"}]),
                          s("tech", script=[{"answer": "t"}])])
    assert (await wf.run({"text": "crash"})).output.answer == "t"
    typed = s("triage", out=Typed, script=[{"label": "billing"}])
    wf2 = Workflow(route("triage", {"billing": "billing", "tech": "tech"}),
                   agents=[typed, s("billing", script=[{"answer": "b"}]), s("tech")])
    assert (await wf2.run({"text": "x"})).output.answer == "b"


async def test_parallel_collect_keeps_each_branch():
    wf = Workflow(parallel(web="web", docs="docs"),
                  agents=[s("web", script=[{"answer": "w"}]), s("docs", script=[{"answer": "d"}])])
    result = await wf.run({"text": "x"})
    assert result.output.web == A(answer="w") and result.output.docs == A(answer="d")
    assert wf.check().output_model.__name__.endswith("Results")


async def test_one_failing_branch_keeps_the_others_results():
    wf = Workflow(parallel("a", "b", "c"), agents=[
        s("a", script=[{"answer": "A"}]), s("b", script=[RuntimeError("boom")]),
        s("c", script=[{"answer": "C"}])])
    result = await wf.run({"text": "x"})
    err = result.error
    assert isinstance(err, BranchesFailed)
    assert set(err.failures) == {"b"} and err.step == "parallel[1]/b" and err.agent == "b"
    assert err.results == {"a": A(answer="A"), "c": A(answer="C")}
    assert result.partial["parallel[0]/a"] == A(answer="A")
    assert result.partial["parallel[2]/c"] == A(answer="C")


async def test_on_error_keep_merges_survivors():
    wf = Workflow(parallel("a", "b", on_error="keep"), agents=[
        s("a", script=[{"answer": "A"}]), s("b", script=[RuntimeError("boom")])])
    result = await wf.run({"text": "x"})
    assert result.ok and result.output.a == A(answer="A") and result.output.b is None
    assert result.events_of("decision")[0].rejected == ("b",)


async def test_majority_vote_records_disagreement_with_sources():
    wf = Workflow(parallel("v1", "v2", "v3", merge=vote()), agents=[
        s("v1", script=[{"answer": "yes"}]), s("v2", script=[{"answer": "yes"}]),
        s("v3", script=[{"answer": "no"}])])
    result = await wf.run({"text": "x"})
    assert result.output == A(answer="yes")
    (dis,) = result.events_of("disagreement")
    assert dis.field == "answer"
    assert dict(dis.values)["parallel[2]/v3"] == '"no"'
    assert result.events_of("decision")[0].chosen == ("v1", "v2")


async def test_vote_without_majority_is_unresolved():
    wf = Workflow(parallel("v1", "v2", merge=vote()), agents=[
        s("v1", script=[{"answer": "yes"}]), s("v2", script=[{"answer": "no"}])])
    result = await wf.run({"text": "x"})
    assert isinstance(result.error, ConflictUnresolved)
    assert set(result.error.candidates) == {"v1", "v2"}


async def test_judge_reads_all_candidates():
    j = s("j", inp=Candidates, script=[lambda c: A(answer=max(c.candidates,
                                                         key=lambda a: a.score).answer)])
    wf = Workflow(parallel("v1", "v2", merge=judge("j")), agents=[
        s("v1", script=[{"answer": "short", "score": 1}]),
        s("v2", script=[{"answer": "long", "score": 5}]), j])
    assert wf.check().ok, wf.check().problems
    result = await wf.run({"text": "x"})
    assert result.output.answer == "long"
    assert j.inputs[0].labels == ["v1", "v2"]


async def test_approvals_in_parallel_branches_all_surface_and_others_finish():
    h1 = HumanAgent("h1", Contract(Q, A), prompt="approve left?")
    h2 = HumanAgent("h2", Contract(Q, A), prompt="approve right?")
    auto = s("auto", script=[{"answer": "auto"}])
    wf = Workflow(parallel("h1", "h2", "auto"), agents=[h1, h2, auto])
    result = await wf.run({"text": "x"})
    assert result.status == "paused"
    assert {p["step"] for p in result.pending} == {"parallel[0]/h1", "parallel[1]/h2"}
    assert result.partial["parallel[2]/auto"] == A(answer="auto")
    answers = {"parallel[0]/h1": {"answer": "L"}, "parallel[1]/h2": {"answer": "R"}}
    again = await wf.run({"text": "x"}, answers=answers)
    assert again.ok and again.output.h1.answer == "L" and again.output.h2.answer == "R"


async def test_nested_patterns_compose():
    triage = s("triage", out=Label, script=[{"label": "tech"}])
    flow = chain(route("triage", {"tech": parallel("r1", "r2", merge=vote()),
                                  "billing": "r1"}), "polish")
    agents = [triage, s("r1", script=[{"answer": "x"}]), s("r2", script=[{"answer": "x"}]),
              s("polish", inp=A, script=[lambda a: A(answer=a.answer.upper())])]
    result = await Workflow(flow, agents=agents).run({"text": "q"})
    assert result.output.answer == "X"
    assert "chain[0]/route[tech]/parallel[1]/r2" in result.partial

