"""Scope: where in the flow tree a node runs (its key prefix) and which budget it draws on."""

from __future__ import annotations

from orchestrion.guards.budget import Budget, Ledger


class Scope:
    """A position in the flow tree. Step keys are ``prefix + segment``.

    Keys are deterministic: the path of pattern segments (``chain[2]``,
    ``parallel[0]``, ``refine[3]``) followed by the agent name, so that a resumed
    run meets the same keys and can replay them from the journal.
    """

    __slots__ = ("ledger", "prefix")

    def __init__(self, prefix: str, ledger: Ledger) -> None:
        self.prefix = prefix
        self.ledger = ledger

    def key(self, name: str) -> str:
        """The step key of ``name`` in this scope."""
        return self.prefix + name

    def enter(self, segment: str) -> Scope:
        """The scope of a child at ``segment``."""
        return Scope(f"{self.prefix}{segment}/", self.ledger)

    def with_budget(self, budget: Budget | None, name: str) -> Scope:
        """This scope drawing on a sub-budget that also counts against the current one."""
        if budget is None:
            return self
        return Scope(self.prefix, self.ledger.child(budget, scope=name))

    @property
    def path(self) -> str:
        return self.prefix.rstrip("/") or "(root)"
