"""Issue 5: tf.distribute. This CPU is split into two logical devices (mirrored) or run as
two workers on localhost (multi-worker), each in its own process: both must be set up
before TensorFlow starts, which in the test process it already has."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_dirs, tiny_config, write_config

from dcgan.storage.metrics_file import METRIC_NAMES, read_metrics

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out

# Mirrored and multi-worker steps reduce the same sums in another order: float32 noise.
LOSS_TOLERANCE = 1e-4

SPLIT_CPU_AND_TRAIN = """
import sys
from dcgan.runtime import import_tensorflow
tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dcgan.cli import main
main(sys.argv[1:], prog_name="dcgan")
"""


def dcgan(*args: str, env: dict | None = None, split_cpu: bool = False):
    command = (
        [sys.executable, "-c", SPLIT_CPU_AND_TRAIN]
        if split_cpu
        else [
            sys.executable,
            "-m",
            "dcgan",
        ]
    )
    return subprocess.Popen(
        [*command, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def losses(run: Path) -> np.ndarray:
    rows = read_metrics(run / "metrics.csv")
    # r1 is empty in a run without R1
    return np.array([[float(row[name]) for name in METRIC_NAMES if row[name]] for row in rows])


def run_named(tmp_path: Path, name: str) -> Path:
    (run,) = [run for run in run_dirs(tmp_path) if run.name.endswith(f"-{name}")]
    return run


def exact_config(tmp_path: Path, name: str, **train) -> Path:
    config = tiny_config(
        tmp_path,
        name=name,
        train={"steps": 6, "precision": "float32", **train},
    )
    config["output"].update(log_every=1, checkpoint_every=3)
    return write_config(tmp_path, config, f"{name}.yaml")


def test_a_mirrored_run_on_two_devices_matches_one_device(tmp_path):
    single = dcgan("train", "--config", str(exact_config(tmp_path, "single")))
    finish(single)
    mirrored = dcgan(
        "train",
        "--config",
        str(exact_config(tmp_path, "mirrored", strategy="mirrored")),
        split_cpu=True,
    )
    finish(mirrored)
    one, two = (run_named(tmp_path, name) for name in ("single", "mirrored"))
    assert "strategy: mirrored over 2 devices" in (two / "train.log").read_text()
    assert "strategy: one device" in (one / "train.log").read_text()
    assert losses(one).shape == (6, 5)
    np.testing.assert_allclose(losses(two), losses(one), atol=LOSS_TOLERANCE)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def two_workers(*args: str) -> list[str]:
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    processes = [
        dcgan(
            "train",
            *args,
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                )
            },
        )
        for i in range(2)
    ]
    return [finish(process) for process in processes]


def test_two_workers_on_localhost_train_resume_and_write_once(tmp_path):
    single = dcgan("train", "--config", str(exact_config(tmp_path, "single")))
    finish(single)
    chief_out, worker_out = two_workers("--config", str(exact_config(tmp_path, "cluster")))
    assert "worker finished at step 6; the chief wrote the run" in worker_out
    runs = run_dirs(tmp_path)
    assert len(runs) == 2, "the second worker must not create a run of its own"
    one, cluster = (run_named(tmp_path, name) for name in ("single", "cluster"))
    assert "multi-worker mirrored over 2 workers, 2 replicas" in (cluster / "train.log").read_text()
    np.testing.assert_allclose(losses(cluster), losses(one), atol=LOSS_TOLERANCE)
    assert sorted(p.name for p in (cluster / "checkpoints").iterdir()) == [
        "step-0000003",
        "step-0000006",
    ]

    two_workers("--resume", str(cluster), "--set", "train.steps=9")
    assert [int(row["step"]) for row in read_metrics(cluster / "metrics.csv")] == list(range(1, 10))
    assert "resumed" in (cluster / "train.log").read_text()
    assert (cluster / "checkpoints" / "step-0000009").is_dir()
    assert len(run_dirs(tmp_path)) == 2


def test_a_global_batch_that_does_not_split_across_replicas_is_refused(tmp_path):
    config_path = exact_config(tmp_path, "odd", strategy="mirrored", batch_size=7)
    process = dcgan("train", "--config", str(config_path), split_cpu=True)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2, output
    assert "train.batch_size 7 cannot be split evenly across 2 replicas" in output
    assert "Traceback" not in output
    assert run_dirs(tmp_path) == []


def test_the_stability_tools_train_mirrored(tmp_path):
    config = tiny_config(
        tmp_path,
        name="tools",
        train={
            "steps": 4,
            "strategy": "mirrored",
            "loss": "hinge",
            "d_steps": 2,
            "diffaugment": ["color", "translation", "cutout"],
        },
        model={"latent_dim": 8, "g_width": 8, "d_width": 8, "ema": 0.9, "d_spectral_norm": True},
    )
    finish(dcgan("train", "--config", str(write_config(tmp_path, config)), split_cpu=True))
    run = run_named(tmp_path, "tools")
    assert "strategy: mirrored over 2 devices" in (run / "train.log").read_text()
    assert np.isfinite(losses(run)).all()
    assert (run / "generator.keras").is_file()


def test_a_conditional_run_mirrored_matches_one_device(tmp_path):
    # Each replica takes its own rows of the (images, classes) batch; mode seeking pairs
    # the rows of a replica, so it is off here to compare with one device exactly.
    conditional = {"model": {"latent_dim": 8, "g_width": 8, "d_width": 8, "conditional": True}}
    paths = {}
    for name, strategy in (("csingle", "default"), ("cmirrored", "mirrored")):
        config = yaml.safe_load(exact_config(tmp_path, name, strategy=strategy).read_text())
        config["model"].update(conditional["model"])
        config["train"].update(mode_seeking=0.0)
        paths[name] = write_config(tmp_path, config, f"{name}.yaml")
    finish(dcgan("train", "--config", str(paths["csingle"])))
    finish(dcgan("train", "--config", str(paths["cmirrored"]), split_cpu=True))
    one, two = (run_named(tmp_path, name) for name in ("csingle", "cmirrored"))
    assert "strategy: mirrored over 2 devices" in (two / "train.log").read_text()
    np.testing.assert_allclose(losses(two), losses(one), atol=LOSS_TOLERANCE)
    # With every tool on, mode seeking included, it trains to the end.
    config = tiny_config(
        tmp_path,
        name="ctools",
        train={"steps": 4, "strategy": "mirrored", "loss": "hinge", "d_steps": 2,
               "diffaugment": ["color", "translation", "cutout"]},
        model={**conditional["model"], "ema": 0.9, "d_spectral_norm": True},
    )  # fmt: skip
    finish(dcgan("train", "--config", str(write_config(tmp_path, config)), split_cpu=True))
    assert np.isfinite(losses(run_named(tmp_path, "ctools"))).all()


def test_ada_trains_mirrored_with_one_p_for_every_replica(tmp_path):
    config = tiny_config(
        tmp_path,
        name="ada",
        train={"steps": 4, "strategy": "mirrored", "augment": "ada", "ada_interval": 1,
               "ada_kimg": 0.05},
    )  # fmt: skip
    config["output"].update(log_every=1)
    finish(dcgan("train", "--config", str(write_config(tmp_path, config)), split_cpu=True))
    run = run_named(tmp_path, "ada")
    assert "strategy: mirrored over 2 devices" in (run / "train.log").read_text()
    ps = [float(row["ada_p"]) for row in read_metrics(run / "metrics.csv")]
    # Both replicas' signs count: p moves by the global batch (8) over 50 images a step.
    steps = np.diff([0.0, *ps])
    assert all(abs(abs(s) - 0.16) < 1e-6 or p in (0.0, 1.0) for s, p in zip(steps, ps, strict=True))
