"""Bound: a cost and latency bound computed from a flow's structure, before it runs.

Patterns combine their children's bounds: a chain sums them, parallel sums cost
and takes the max of latency, a route takes the max over branches, loops multiply.
``None`` in a dimension means "cannot be bounded" (an agent with no declared
limit), which the pre-flight estimate reports honestly instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _max(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a, b)


@dataclass(frozen=True, slots=True)
class Bound:
    """Upper bound of calls, model requests, tokens, dollars and seconds."""

    calls: int = 0
    requests: int = 0
    tokens: int | None = 0
    usd: float | None = 0.0
    seconds: float | None = 0.0

    def then(self, other: Bound) -> Bound:
        """Sequential composition: everything adds up."""
        return Bound(
            self.calls + other.calls,
            self.requests + other.requests,
            _add(self.tokens, other.tokens),  # type: ignore[arg-type]
            _add(self.usd, other.usd),
            _add(self.seconds, other.seconds),
        )

    def alongside(self, other: Bound) -> Bound:
        """Parallel composition: cost adds up, latency is the slower branch."""
        return Bound(
            self.calls + other.calls,
            self.requests + other.requests,
            _add(self.tokens, other.tokens),  # type: ignore[arg-type]
            _add(self.usd, other.usd),
            _max(self.seconds, other.seconds),
        )

    def either(self, other: Bound) -> Bound:
        """Alternatives (route branches): the worst of each dimension."""
        return Bound(
            max(self.calls, other.calls),
            max(self.requests, other.requests),
            _max(self.tokens, other.tokens),  # type: ignore[arg-type]
            _max(self.usd, other.usd),
            _max(self.seconds, other.seconds),
        )

    def times(self, n: int) -> Bound:
        """``n`` sequential repetitions (loop rounds, retries)."""
        return Bound(
            self.calls * n,
            self.requests * n,
            None if self.tokens is None else self.tokens * n,
            None if self.usd is None else self.usd * n,
            None if self.seconds is None else self.seconds * n,
        )

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "calls": self.calls,
            "requests": self.requests,
            "tokens": self.tokens,
            "usd": None if self.usd is None else round(self.usd, 6),
            "seconds": self.seconds,
        }


ZERO_BOUND = Bound()


def sequence(bounds: list[Bound]) -> Bound:
    total = ZERO_BOUND
    for b in bounds:
        total = total.then(b)
    return total


def concurrently(bounds: list[Bound]) -> Bound:
    total = ZERO_BOUND
    for b in bounds:
        total = total.alongside(b)
    return total


def worst_of(bounds: list[Bound]) -> Bound:
    total = ZERO_BOUND
    for b in bounds:
        total = total.either(b)
    return total
