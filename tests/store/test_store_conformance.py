"""Runs the conformance suite on every store: memory, SQLite and (when configured) Postgres."""

from __future__ import annotations

from .conformance import StoreConformance


class TestStoreConformance(StoreConformance):
    """The ``backend`` fixture (conftest.py) parametrizes each test over the stores."""
