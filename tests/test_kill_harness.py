"""scripts/kill_harness.py, small: SIGKILLs at random moments, every resume sound."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out


HARNESS = Path(__file__).resolve().parent.parent / "scripts" / "kill_harness.py"


def test_runs_survive_sigkill_at_random_moments_and_end_like_an_unbroken_run(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "--kills",
            "4",
            "--steps",
            "40",
            "--seed",
            "3",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "survived 4 of 4 kills" in result.stdout
    assert re.search(r"final step and weights equal to unbroken run\s+yes", result.stdout)
    assert "FAILED" not in result.stdout
