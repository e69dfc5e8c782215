"""Retry policy: bounded attempts with exponential backoff, for transient faults only."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Retry transient failures up to ``max_attempts`` in total.

    Only errors that declare ``retryable = True`` (provider unavailability, a step
    timeout) or are instances of ``retry_on`` are retried; everything else fails
    at once, because repeating a deterministic fault only multiplies cost.
    """

    max_attempts: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be >= 1")

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """True if ``exc`` on ``attempt`` (1-based) warrants another attempt."""
        if attempt >= self.max_attempts:
            return False
        return bool(getattr(exc, "retryable", False)) or isinstance(exc, self.retry_on)

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1``."""
        base = min(self.max_backoff_s, self.backoff_s * (2 ** (attempt - 1)))
        return base * (1 + self.jitter * random.random()) if base else 0.0


NO_RETRY = Retry(max_attempts=1)
