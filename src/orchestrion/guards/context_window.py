"""Context window policy: act *before* a request would overflow the model's window.

The prompt of an agent grows with tool results and repair turns.  Before each
request the LLM agent estimates its size (:func:`estimate_request_tokens`) and
compares it with the input limit: the model's declared ``context_window`` minus
the ``max_tokens`` reserved for the answer (and the agent's ``max_input_tokens``).
Over the limit, the agent's ``overflow`` policy acts:

* ``"fail"``: a typed :class:`~orchestrion.errors.ContextOverflow`, request unsent;
* ``"prune"``: elide the oldest tool results, then drop the oldest exchanges,
  always keeping the system prompt, the typed payload and the latest exchange;
* ``"summarize"``: replace the middle of the conversation by a summary written by
  a declared summarizer agent (called through the choke point), then prune if
  that is still not enough.

If nothing fits, the request is never sent: :class:`ContextOverflow`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, RootModel

from orchestrion.providers.base import Message, ModelRequest, estimate_request_tokens

Overflow = Literal["fail", "prune", "summarize"]
OVERFLOW_POLICIES: tuple[str, ...] = ("fail", "prune", "summarize")


class SummaryRequest(BaseModel):
    """What a summarizer agent receives: the text to condense and the size to aim for."""

    text: str
    max_tokens: int


class Summary(BaseModel):
    """What a summarizer agent returns (a ``text`` field or a plain string also works)."""

    summary: str


@dataclass(frozen=True, slots=True)
class Fit:
    """The outcome of fitting a request: the request and what was done to it."""

    request: ModelRequest
    before: int
    after: int
    elided: int = 0
    dropped: int = 0
    summarized: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.elided or self.dropped or self.summarized)

    def describe(self, limit: int) -> str:
        done = [
            f"{n} {what}"
            for n, what in (
                (self.summarized, "message(s) summarized"),
                (self.elided, "tool result(s) elided"),
                (self.dropped, "exchange(s) dropped"),
            )
            if n
        ]
        return f"~{self.before} -> ~{self.after} input tokens (limit {limit}): " + ", ".join(done)


def input_limit(provider: Any, max_tokens: int, max_input_tokens: int | None) -> tuple[int, str]:
    """The largest prompt a request may have, and what sets that limit."""
    limits: list[tuple[int, str]] = []
    if max_input_tokens is not None:
        limits.append((max_input_tokens, f"max_input_tokens={max_input_tokens}"))
    window = getattr(provider, "context_window", None)
    if window:
        limits.append(
            (window - max_tokens, f"context window of {window} minus max_tokens={max_tokens}")
        )
    return min(limits) if limits else (10**12, "no limit")


def split(messages: Sequence[Message]) -> tuple[list[Message], list[list[Message]]]:
    """(head, exchanges): leading system messages and the first user message (the typed
    payload), then exchanges, each an assistant message with the tool or user messages
    answering it.  Tool results stay with the call that asked for them."""
    i = 0
    while i < len(messages) and messages[i].role == "system":
        i += 1
    if i < len(messages) and messages[i].role == "user":
        i += 1
    head: list[Message] = list(messages[:i])
    groups: list[list[Message]] = []
    for m in messages[i:]:
        if m.role == "assistant" or not groups:
            groups.append([m])
        else:
            groups[-1].append(m)
    return head, groups


def prune(request: ModelRequest, limit: int) -> Fit:
    """Elide the oldest tool results, then drop the oldest exchanges, until under ``limit``.

    The head and the latest exchange (what the model must answer now) are kept;
    as a last resort the latest tool results are truncated (longest first), with a
    marker saying how much was cut.
    """
    before = size = estimate_request_tokens(request)
    head, groups = split(request.messages)
    elided = dropped = 0
    for group in groups[:-1]:
        for j, m in enumerate(group):
            if size <= limit:
                break
            if m.role == "tool" and not m.content.startswith(_ELIDED):
                group[j] = replace(
                    m,
                    content=f"{_ELIDED} {len(m.content)} characters of an "
                    "earlier tool result removed to fit the context]",
                )
                elided += 1
                size = _size(request, head, groups)
    while size > limit and len(groups) > 1:
        groups.pop(0)
        dropped += 1
        size = _size(request, head, groups)
    if size > limit and groups:
        elided += _truncate_latest(groups[-1], size - limit)
        size = _size(request, head, groups)
    fitted = replace(request, messages=tuple(_flat(head, groups)))
    return Fit(fitted, before, size, elided=elided, dropped=dropped)


def middle_text(request: ModelRequest) -> tuple[str, int]:
    """The part a summary replaces (every exchange but the latest) as text, and its count."""
    _, groups = split(request.messages)
    middle = [m for g in groups[:-1] for m in g]
    lines = [f"[{m.role}{' ' + m.name if m.name else ''}] {m.content}" for m in middle]
    return "\n".join(lines), len(middle)


def summarized(request: ModelRequest, summary: str) -> ModelRequest:
    """``request`` with every exchange but the latest replaced by one summary message."""
    head, groups = split(request.messages)
    note = Message("user", f"Summary of the earlier part of this conversation:\n{summary}")
    return replace(request, messages=tuple([*head, note, *(groups[-1] if groups else [])]))


def summary_text(output: Any) -> str:
    """The summary in a summarizer's output: ``summary`` or ``text`` field, or the string."""
    if isinstance(output, RootModel):
        output = output.root
    for name in ("summary", "text"):
        value = getattr(output, name, None)
        if isinstance(value, str):
            return value
    return output if isinstance(output, str) else str(output)


_ELIDED = "[elided:"


def _truncate_latest(group: list[Message], excess_tokens: int) -> int:
    """Cut the longest tool results of ``group`` by about ``excess_tokens``; returns how many."""
    cut = 0
    order = sorted(
        (j for j, m in enumerate(group) if m.role == "tool"), key=lambda j: -len(group[j].content)
    )
    for j in order:
        if excess_tokens <= 0:
            break
        m = group[j]
        keep = max(0, len(m.content) - (excess_tokens + 24) * 4)
        marker = f" [{len(m.content) - keep} characters cut to fit the context]"
        group[j] = replace(m, content=m.content[:keep] + marker)
        excess_tokens -= (len(m.content) - len(group[j].content)) // 4
        cut += 1
    return cut


def _flat(head: list[Message], groups: list[list[Message]]) -> list[Message]:
    return [*head, *(m for g in groups for m in g)]


def _size(request: ModelRequest, head: list[Message], groups: list[list[Message]]) -> int:
    return estimate_request_tokens(replace(request, messages=tuple(_flat(head, groups))))
