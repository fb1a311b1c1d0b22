"""Shared fixtures: tiny configs and images made on the spot; nothing is downloaded."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

# Before anything imports TensorFlow: no downloads, a private Keras cache, quiet logs.
os.environ["DCGAN_OFFLINE"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Several test processes share the cores: TensorFlow's pools sized for one of them, so
    # that the workers do not each spread over every core and wait on each other.
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(_threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(_threads))

from dcgan.web import runtime as web_runtime  # noqa: E402  (imports no TensorFlow)

# The onnxruntime-web archive scripts/test.sh fetched (python -m dcgan.web.runtime), found
# before each test's KERAS_HOME is made private: the page tests use it, nothing downloads.
WEB_RUNTIME = (
    Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    / "onnxruntime-web"
    / f"onnxruntime-web-{web_runtime.VERSION}.tgz"
)


@pytest.fixture(autouse=True)
def _private_keras_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))


def _train_once(tmp_path_factory, name: str, **sections) -> Path:
    from dcgan.cli import main

    root = tmp_path_factory.mktemp(name)
    config = tiny_config(root, **sections)
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(root, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root)
    return run


@pytest.fixture(scope="session")
def _tiny_run(tmp_path_factory) -> Path:
    """tiny_config's run of 6 steps, trained once per session (per worker)."""
    return _train_once(tmp_path_factory, "tiny-run")


@pytest.fixture(scope="session")
def _four_step_run(tmp_path_factory) -> Path:
    return _train_once(tmp_path_factory, "four-steps", train={"steps": 4})


def copy_run(run: Path, root: Path) -> Path:
    """A copy of a shared run in root/runs/: the tests that take it may write into it."""
    copy = root / "runs" / run.name
    shutil.copytree(run, copy)
    return copy


@pytest.fixture(scope="module")
def tiny_run(_tiny_run, tmp_path_factory) -> Path:
    """A finished 6-step run of tiny_config, this module's own copy."""
    return copy_run(_tiny_run, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def four_step_run(_four_step_run, tmp_path_factory) -> Path:
    """A finished 4-step run of tiny_config, this module's own copy."""
    return copy_run(_four_step_run, tmp_path_factory.mktemp("four"))


def invoke_checked(*args, code: int = 0):
    """`dcgan ARGS` in this process: it must exit with code, and print no traceback."""
    from dcgan.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def error_line(result, exit_code: int = 2) -> str:
    """The one line a refused command prints (after click's usage lines, for an option)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    if lines and lines[0].startswith("Usage: "):  # click's own usage error
        lines = [line for line in lines[1:] if not line.startswith("Try '")]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def tiny_config(tmp_path: Path, **sections) -> dict:
    """A config that trains in seconds: 16x16 digits, 8 filters, batch 8."""
    config = {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "digits", "image_size": 16, "channels": 1, "max_images": 64},
        "model": {"latent_dim": 8, "g_width": 8, "d_width": 8},
        "train": {"batch_size": 8, "steps": 6},
        "output": {
            "dir": str(tmp_path / "runs"),
            "sample_every": 3,
            "num_samples": 4,
            "checkpoint_every": 4,
            "keep_checkpoints": 2,
            "log_every": 2,
        },
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    return config


def write_config(tmp_path: Path, config: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def load_script(name: str):
    """scripts/NAME.py imported as the module NAME (registered, so its dataclasses find
    their module)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def save_image(path: Path, pixels: np.ndarray, mode: str | None = None, **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels, mode) if mode else Image.fromarray(pixels)
    image.save(path, **save_args)
    return path


def random_pixels(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "runs").iterdir())


def metric_steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as stream:
        return [int(row["step"]) for row in csv.DictReader(stream)]


def sample_steps(run: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run / "samples").glob("step-*.png"))


def checkpoint_steps(run: Path) -> list[int]:
    names = [p.name for p in (run / "checkpoints").glob("step-*")]
    return sorted(int(name[5:]) for name in names if name[5:].isdigit())  # not .damaged


def snapshot(run: Path) -> dict[str, str]:
    """Every file of a run and a hash of its bytes: equal snapshots, an untouched run."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }
