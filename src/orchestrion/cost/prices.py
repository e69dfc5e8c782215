"""Price table: dollars per million tokens, by model id.

Prices change; the table is data the user can extend with :func:`register_price`.
An unknown model has no price (``None``), never a silent zero: a usd budget over a
model without a price is reported by ``Workflow.check()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrion.cost.usage import Usage


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


# Public list prices (USD / 1M tokens) as of 2026; extend or override with register_price.
_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o4-mini": Price(1.10, 4.40),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-haiku-3.5": Price(0.80, 4.00),
    "claude-opus-4": Price(15.00, 75.00),
}


def register_price(model: str, input_per_mtok: float, output_per_mtok: float) -> None:
    """Add or override the price of ``model`` (USD per million tokens)."""
    if input_per_mtok < 0 or output_per_mtok < 0:
        raise ValueError("prices must be >= 0")
    _PRICES[model] = Price(input_per_mtok, output_per_mtok)


def price_of(model: str) -> Price | None:
    """The price of ``model``; a provider prefix (``openai:``) is ignored.

    The full name is tried first, so a model name with a colon of its own
    (``llama3.1:8b``) is not mistaken for a prefixed one.
    """
    found = _PRICES.get(model)
    if found is None and ":" in model:
        found = _PRICES.get(model.split(":", 1)[1])
    return found


def priced(usage: Usage, model: str) -> Usage:
    """``usage`` with its usd filled in from the price table (unchanged if unknown)."""
    price = price_of(model)
    if price is None:
        return usage
    return Usage(
        usage.input_tokens,
        usage.output_tokens,
        usage.requests,
        price.cost(usage.input_tokens, usage.output_tokens),
    )
