"""Every example in examples/ runs, as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
EXPECT = {
    "stub_first.py": ["on stubs: succeeded", "with a real writer: succeeded", "cost: $"],
    "durable_approval.py": ["status: paused - send this refund?", "paying 49.00",
                            "status: succeeded"],
}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(name: str) -> None:
    assert name in EXPECT, f"add the expected output of examples/{name} to EXPECT"
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for piece in EXPECT[name]:
        assert piece in done.stdout, (piece, done.stdout)
