"""A small workflow with a human step, loaded by the CLI tests through MODULE:ATTRIBUTE."""

from pydantic import BaseModel

from orchestrion import HumanAgent, Workflow, agent, chain
from orchestrion.contracts.contract import Contract


class Doc(BaseModel):
    text: str


@agent
def shout(d: Doc) -> Doc:
    return Doc(text=d.text.upper())


def build() -> Workflow:
    editor = HumanAgent("editor", Contract(Doc, Doc), prompt="edit the draft")
    return Workflow(chain("editor", "shout"), agents=[editor, shout], name="edit-and-shout")


def build_expiring() -> Workflow:
    """The same flow, where the editor's request expires after 10 ms."""
    from orchestrion import Policy
    from orchestrion.hitl.levels import Hitl

    editor = HumanAgent("editor", Contract(Doc, Doc), prompt="edit the draft")
    return Workflow(chain("editor", "shout"), agents=[editor, shout], name="edit-and-shout",
                    policy=Policy(hitl=Hitl(level=0, expires_after_s=0.01)))
