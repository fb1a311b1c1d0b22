"""Issue 4: a full disk or an unwritable folder is one clear line and loses nothing."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import checkpoint_steps, run_dirs, snapshot, tiny_config, write_config

from dcgan.cli import main
from dcgan.files.writing import TEMPORARY_PATTERN

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out


def dcgan(*args: str, preexec=None, wrap: list[str] | None = None):
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "dcgan", *args],
        capture_output=True,
        text=True,
        preexec_fn=preexec,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def without_root_override() -> list[str]:
    """Root ignores file modes; without CAP_DAC_OVERRIDE it meets them like anyone."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root: util-linux's setpriv is needed to drop CAP_DAC_OVERRIDE"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def trained_run(runner, tmp_path: Path, width: int = 8) -> Path:
    config = tiny_config(tmp_path, model={"g_width": width, "d_width": width}, train={"steps": 4})
    result = runner.invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    return run


def temporaries(run: Path) -> list[str]:
    return [p.name for p in run.rglob("*") if TEMPORARY_PATTERN.match(p.name)]


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(runner, tmp_path):
    # Width 32 makes the checkpoint's data file ~0.9 MB while every other file stays far
    # under the 300 kB that RLIMIT_FSIZE lets one file grow to: the kernel then fails the
    # checkpoint's write with EFBIG, as a full disk would fail it with ENOSPC.
    run = trained_run(runner, tmp_path, width=32)
    before = snapshot(run / "checkpoints")

    def small_files_only():
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    result = dcgan(
        "train", "--resume", str(run), "--set", "train.steps=8", preexec=small_files_only
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "checkpoints/step-0000008: cannot write: " in errors[0]
    assert errors[0].endswith("cannot write: File too large; step-0000004 is intact")
    assert "Traceback" not in result.stderr
    assert snapshot(run / "checkpoints") == before
    assert checkpoint_steps(run) == [4]
    assert temporaries(run) == []
    assert "cannot write" in (run / "train.log").read_text()

    # Once there is room again, the resume goes on from the intact checkpoint.
    result = runner.invoke(main, ["train", "--resume", str(run), "--set", "train.steps=8"])
    assert result.exit_code == 0, result.output
    assert checkpoint_steps(run) == [4, 8]


def test_unwritable_samples_folder_is_reported_and_the_run_kept(runner, tmp_path):
    run = trained_run(runner, tmp_path)
    before = snapshot(run / "checkpoints")
    (run / "samples").chmod(0o555)
    try:
        result = dcgan(
            "train", "--resume", str(run), "--set", "train.steps=8", wrap=without_root_override()
        )
    finally:
        (run / "samples").chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "samples/step-0000006.png: cannot write: Permission denied; step-0000004 is intact" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert snapshot(run / "checkpoints") == before
    assert temporaries(run) == []


def test_unwritable_output_dir_creates_no_run(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    config_path = write_config(tmp_path, tiny_config(tmp_path))
    try:
        result = dcgan("train", "--config", str(config_path), wrap=without_root_override())
    finally:
        runs.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert f"output.dir {runs}: cannot create a run: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(runs.iterdir()) == []
