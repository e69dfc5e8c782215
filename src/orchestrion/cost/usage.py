"""Usage: what a call consumed. Added up per step, per agent and per run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens, model requests and dollars consumed.

    ``requests`` counts model (provider) requests; agent/tool invocations are
    counted separately by the runtime as ``calls``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        # Adding nothing: the other value itself (values are immutable, so no copy needed).
        if other is ZERO and type(self) is Usage:
            return self
        if self is ZERO and type(other) is Usage:
            return other
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
            self.usd + other.usd,
        )

    def __bool__(self) -> bool:
        return bool(self.input_tokens or self.output_tokens or self.requests or self.usd)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.requests,
            "usd": round(self.usd, 8),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Usage:
        return cls(
            int(data.get("input_tokens", 0)),
            int(data.get("output_tokens", 0)),
            int(data.get("requests", 0)),
            float(data.get("usd", 0.0)),
        )


ZERO = Usage()
"""The shared zero value (use it instead of allocating ``Usage()``)."""
