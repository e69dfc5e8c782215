"""A 3-step chain whose first step produces a value the third cannot accept."""

from pydantic import BaseModel, field_validator

from orchestrion import Workflow, agent, chain


class Count(BaseModel):
    n: int


class Positive(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("n must be positive")
        return v


@agent
def source(c: Count) -> Count:
    return Count(n=-c.n)


@agent
def relay(c: Count) -> Count:
    return c


@agent
def sink(c: Positive) -> Count:
    return Count(n=c.n)


def build() -> Workflow:
    return Workflow(chain("source", "relay", "sink"), agents=[source, relay, sink], name="faulty")
