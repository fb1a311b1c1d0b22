"""Issue 5: what train.precision, train.xla and train.strategy resolve to, and why."""

from __future__ import annotations

import json

import pytest
from conftest import run_dirs, tiny_config, write_config

from dcgan.cli import main
from dcgan.config import TrainConfig
from dcgan.errors import ConfigError
from dcgan.storage.metrics_file import read_metrics
from dcgan.training import execution


@pytest.mark.parametrize(
    ("flags", "expected", "reason"),
    [
        ({"avx512f", "amx_bf16", "avx512_bf16"}, "bfloat16", "AMX bf16 units"),
        ({"avx512f", "avx512_bf16"}, "bfloat16", "AVX512-BF16 instructions"),
        ({"avx2", "fma"}, "float32", "no bfloat16 instructions"),
    ],
)
def test_auto_precision_on_a_cpu_follows_its_instructions(monkeypatch, flags, expected, reason):
    monkeypatch.setattr(execution, "cpu_flags", lambda: flags)
    precision, why = execution._precision("auto", gpus=[])
    assert precision == expected
    assert why.startswith(f"precision auto: {expected}") and reason in why


def test_a_configured_precision_and_xla_are_taken_as_they_are(monkeypatch):
    monkeypatch.setattr(execution, "cpu_flags", lambda: {"amx_bf16"})
    assert execution._precision("float32", gpus=[]) == (
        "float32",
        "precision float32 (set in the config)",
    )
    assert execution._xla(True, gpus=[]) == (True, "XLA on (set in the config)")
    xla, why = execution._xla("auto", gpus=[])
    assert xla is False and "slower" in why


def test_the_cpu_flags_are_read_from_this_machine():
    flags = execution.cpu_flags()
    assert isinstance(flags, set)
    if flags:  # Linux: every x86-64 CPU reports sse2, every arm64 one fp or asimd
        assert flags & {"sse2", "fp", "asimd"}


def cluster_env(monkeypatch, task_type: str, index: int, chief: bool = False) -> None:
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    if chief:
        cluster["chief"] = ["localhost:3"]
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
    )


def test_only_the_chief_of_a_cluster_writes_the_run(monkeypatch):
    auto = TrainConfig()
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert execution.writes_the_run(auto)
    cluster_env(monkeypatch, "worker", 0)
    assert execution.writes_the_run(auto)  # worker 0 is the chief when none is named
    cluster_env(monkeypatch, "worker", 1)
    assert not execution.writes_the_run(auto)
    assert execution.writes_the_run(TrainConfig(strategy="default"))  # TF_CONFIG unused
    cluster_env(monkeypatch, "worker", 0, chief=True)
    assert not execution.writes_the_run(auto)
    cluster_env(monkeypatch, "chief", 0, chief=True)
    assert execution.writes_the_run(auto)


def test_a_one_task_tf_config_is_no_cluster_and_a_broken_one_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}}))
    assert execution.cluster_from_env() is None
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG: is not a JSON object"):
        execution.cluster_from_env()


def test_multi_worker_without_a_cluster_is_a_config_error(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"strategy": "multi_worker"}))
    result = runner.invoke(main, ["train", "--config", str(config_path)])
    assert result.exit_code == 2
    assert "train.strategy: multi_worker needs TF_CONFIG" in result.output
    assert run_dirs(tmp_path) == []  # nothing trained, nothing kept


def test_the_run_log_says_what_auto_chose(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config_path = write_config(tmp_path, tiny_config(tmp_path, train={"steps": 2}))
    assert runner.invoke(main, ["train", "--config", str(config_path)]).exit_code == 0
    (run,) = run_dirs(tmp_path)
    log = (run / "train.log").read_text()
    expected, _ = execution._precision("auto", gpus=[])
    assert f"execution: precision auto: {expected}" in log
    assert "XLA auto: off" in log and "strategy: one device" in log
    assert [row["step"] for row in read_metrics(run / "metrics.csv")] == ["2"]


def test_a_float16_run_with_loss_scaling_resumes_in_float32(runner, tmp_path, monkeypatch):
    """Checkpoints hold float32 weights and the bare Adam states in every precision."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = tiny_config(tmp_path, train={"steps": 4, "precision": "float16"})
    config_path = write_config(tmp_path, config)
    assert runner.invoke(main, ["train", "--config", str(config_path)]).exit_code == 0
    (run,) = run_dirs(tmp_path)
    overrides = ["--set", "train.precision=float32", "--set", "train.steps=6"]
    resumed = runner.invoke(main, ["train", "--resume", str(run), *overrides])
    assert resumed.exit_code == 0, resumed.output
    log = (run / "train.log").read_text()
    assert "precision float16 (set in the config)" in log
    assert "resumed" in log and "precision float32 (set in the config)" in log
    rows = read_metrics(run / "metrics.csv")
    assert [row["step"] for row in rows] == ["2", "4", "6"]
    assert all(float(row["d_loss"]) > 0 for row in rows)
