"""The statements of the SQL stores, written once for SQLite and Postgres alike.

Both stores have the same tables (:mod:`~orchestrion.store.migrations`) and the same
column orders (:mod:`~orchestrion.store.codec`), so they send the same SQL; only the
parameter mark (``?`` or ``%s``) and the column that keeps insertion order (SQLite's
``rowid``, Postgres' ``row_id``) differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from orchestrion.store import codec

# What deciding an approval writes, in the order of Statements.decide_approval.
_DECIDED = ("status", "decided_at", "decided_by", "edited_action", "reason")


class Statements:
    """The journal's SQL with parameter mark ``mark``, ordered by ``row_order``."""

    def __init__(self, mark: str, row_order: str) -> None:
        self.mark = mark
        self.row_order = row_order
        self.run_columns = run = ", ".join(codec.RUN_COLUMNS)
        step = ", ".join(codec.STEP_COLUMNS)
        event = ", ".join(codec.EVENT_COLUMNS)
        approval = ", ".join(codec.APPROVAL_COLUMNS)

        self.insert_run = f"INSERT INTO runs ({run}) VALUES ({self._marks(codec.RUN_COLUMNS)})"
        self.select_run = f"SELECT {run} FROM runs WHERE run_id = {mark}"
        self.run_exists = f"SELECT 1 FROM runs WHERE run_id = {mark}"

        self.upsert_step = (
            f"INSERT INTO steps ({step}) VALUES ({self._marks(codec.STEP_COLUMNS)}) "
            "ON CONFLICT (run_id, step_key, attempt) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in codec.STEP_COLUMNS[3:])
        )
        self.select_steps = f"SELECT {step} FROM steps WHERE run_id = {mark} ORDER BY {row_order}"
        self.select_succeeded_steps = (  # ordered by attempt so the latest attempt of a key wins
            f"SELECT {step} FROM steps WHERE run_id = {mark} AND status = 'succeeded' "
            "ORDER BY attempt"
        )

        self.insert_event = (
            f"INSERT INTO events ({event}) VALUES ({self._marks(codec.EVENT_COLUMNS)})"
        )
        self.select_events = (
            f"SELECT {event} FROM events WHERE run_id = {mark} AND seq > {mark} ORDER BY seq"
        )
        self.last_seq = f"SELECT MAX(seq) FROM events WHERE run_id = {mark}"

        self.insert_approval = (
            f"INSERT INTO approvals ({approval}) VALUES ({self._marks(codec.APPROVAL_COLUMNS)})"
        )
        self.select_approval = f"SELECT {approval} FROM approvals WHERE request_id = {mark}"
        self.select_pending = (
            f"SELECT {approval} FROM approvals WHERE run_id = {mark} AND status = 'pending' "
            f"ORDER BY created_at, {row_order}"
        )
        self.decide_approval = (
            f"UPDATE approvals SET {self._assignments(_DECIDED)} "
            f"WHERE request_id = {mark} AND status = 'pending'"
        )

    def list_runs(self, *, by_status: bool) -> str:
        """Runs newest first, up to a limit; ``by_status`` takes the status first."""
        where = f"WHERE status = {self.mark} " if by_status else ""
        return (
            f"SELECT {self.run_columns} FROM runs {where}"
            f"ORDER BY created_at DESC, {self.row_order} DESC LIMIT {self.mark}"
        )

    def run_statuses(self, count: int) -> str:
        """``(run_id, status)`` of the runs among ``count`` ids given as parameters."""
        marks = ", ".join(self.mark for _ in range(count))
        return f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})"

    def update_run(self, columns: Iterable[str], only_if: int | None = None) -> str:
        """Set ``columns`` (fixed names, never user input) of the run with the parameter
        after them; with ``only_if``, only if its status is one of that many more
        parameters (none matches an empty set)."""
        sql = f"UPDATE runs SET {self._assignments(columns)} WHERE run_id = {self.mark}"
        if only_if is None:
            return sql
        if only_if == 0:
            return f"{sql} AND 1 = 0"
        return f"{sql} AND status IN ({', '.join(self.mark for _ in range(only_if))})"

    def _marks(self, columns: Sequence[str]) -> str:
        return ", ".join(self.mark for _ in columns)

    def _assignments(self, columns: Iterable[str]) -> str:
        return ", ".join(f"{column} = {self.mark}" for column in columns)


def decision_args(row: Sequence[Any], request_id: str) -> tuple[Any, ...]:
    """The parameters of ``decide_approval`` that write the decided approval ``row``."""
    decided = tuple(row[codec.APPROVAL_COLUMNS.index(column)] for column in _DECIDED)
    return (*decided, request_id)
