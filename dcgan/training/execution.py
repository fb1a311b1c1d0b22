"""How a run uses the hardware it gets: the precision policy, XLA, the tf.distribute
strategy and the training steps per call. Settings of 'auto' are resolved here, each with
the reason the run log gives.

The CPU rules come from scripts/bench.py: bfloat16 where the CPU has bf16 instructions
(steps 1.35-1.45x faster than float32 on AVX512-BF16; AMX units are faster still), float32
elsewhere; XLA off (on CPU it made the step 1.5-2.3x slower). On GPUs, float16 with loss
scaling where there are tensor cores and XLA on, as Keras itself defaults to: not yet
measured here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from dcgan.config import Config, TrainConfig, intervals
from dcgan.errors import ConfigError

KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@dataclass(frozen=True)
class Execution:
    precision: str  # float32 | bfloat16 | float16 (the compute dtype; weights stay float32)
    xla: bool
    strategy: tf.distribute.Strategy
    reasons: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def several_hosts(self) -> bool:
        """Workers in step across hosts: checkpoint reads and saves are collectives."""
        return isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)

    @property
    def loss_scaling(self) -> bool:
        return self.precision == "float16"

    def describe(self) -> str:
        return "; ".join(self.reasons)


def plan(train: TrainConfig, source: Path | str = "the config") -> Execution:
    """Resolve train.precision, train.xla and train.strategy for this machine, create the
    strategy (first: MultiWorkerMirroredStrategy must exist before any other TF work) and
    set Keras' global dtype policy, which the models pick up when they are built."""
    strategy, strategy_reason = _strategy(train.strategy, source)
    gpus = tf.config.list_physical_devices("GPU")
    precision, precision_reason = _precision(train.precision, gpus)
    xla, xla_reason = _xla(train.xla, gpus)
    keras.mixed_precision.set_global_policy(KERAS_POLICY[precision])
    return Execution(precision, xla, strategy, [precision_reason, xla_reason, strategy_reason])


# steps_per_execution auto: a call into the training function should take about
# CALL_SECONDS, so that the progress bar moves and Ctrl-C answers, and never more than
# MAX_STEPS_PER_EXECUTION steps. The rates are deliberately low guesses of what a DCGAN
# step reaches (this 2-core CPU measured about 100 GFLOP/s in float32; a data-centre GPU
# reaches tens of TFLOP/s), so a call errs on the short side.
MAX_STEPS_PER_EXECUTION = 100
CALL_SECONDS = 1.0
ASSUMED_FLOPS = {"GPU": 10e12, "CPU core": 25e9}


def steps_per_execution(config: Config, start_step: int, step_flops: float) -> tuple[int, str]:
    """K, the training steps per call, and the reason the run log gives. Side effects
    happen between calls, so K divides every interval, train.steps and the step the run
    starts from. auto: the largest such K up to MAX_STEPS_PER_EXECUTION whose call, at
    step_flops FLOPs a step, takes at most about CALL_SECONDS on this device."""
    setting = config.train.steps_per_execution
    if setting != "auto":
        if start_step % setting:
            raise ConfigError(
                f"train.steps_per_execution {setting} does not divide step {start_step}, where "
                f"this run resumes: use auto, or a number that divides {start_step} and every "
                "interval"
            )
        return setting, f"steps per call {setting} (set in the config)"
    common = math.gcd(start_step, *intervals(config).values())
    gpus = tf.config.list_physical_devices("GPU")
    rate = ASSUMED_FLOPS["GPU"] * len(gpus) if gpus else ASSUMED_FLOPS["CPU core"] * _cores()
    longest = int(CALL_SECONDS * rate / max(step_flops, 1.0))
    limit = max(1, min(MAX_STEPS_PER_EXECUTION, longest))
    steps = max(k for k in range(1, limit + 1) if common % k == 0)
    return steps, (
        f"steps per call auto: {steps} (the largest divisor of every interval, train.steps "
        f"and the start step, {common}, that keeps a call near {CALL_SECONDS:g} s: at most "
        f"{limit} here)"
    )


def step_flops(generator: keras.Model, discriminator: keras.Model, config: Config) -> float:
    """FLOPs of one training step: per image 3G + 8D (G forward and back; D forward and
    back on the real and the fake batch and once more for G's loss), per D update."""
    from dcgan.models.adversarial import objective_for
    from dcgan.models.networks import forward_flops

    per_image = 3 * forward_flops(generator) + 8 * forward_flops(discriminator)
    return float(per_image * objective_for(config).images_per_step(config.train.batch_size))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    """The instruction-set flags of the first CPU (Linux); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _precision(setting: str, gpus: list) -> tuple[str, str]:
    if setting != "auto":
        return setting, f"precision {setting} (set in the config)"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability", (0, 0))
        name = details.get("device_name", "GPU")
        if tuple(capability) >= (7, 0):
            return "float16", (
                f"precision auto: float16 with loss scaling ({name} has tensor cores, "
                f"compute capability {capability[0]}.{capability[1]})"
            )
        return "float32", f"precision auto: float32 ({name} has no tensor cores)"
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "bfloat16", "precision auto: bfloat16 (the CPU has AMX bf16 units)"
    if "avx512_bf16" in flags:
        return "bfloat16", "precision auto: bfloat16 (the CPU has AVX512-BF16 instructions)"
    return "float32", "precision auto: float32 (the CPU has no bfloat16 instructions)"


def _xla(setting: bool | str, gpus: list) -> tuple[bool, str]:
    if setting != "auto":
        return bool(setting), f"XLA {'on' if setting else 'off'} (set in the config)"
    if gpus:
        return True, "XLA auto: on (a GPU: XLA fuses the normalisation and activation ops)"
    return False, "XLA auto: off (on CPU it makes the step slower)"


def writes_the_run(train: TrainConfig) -> bool:
    """Whether this process writes the run directory: every process but the non-chief
    workers of a multi-worker cluster, which train in a scratch folder instead."""
    cluster = cluster_from_env()
    if train.strategy in ("default", "mirrored") or not cluster:
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index") == 0


def cluster_from_env() -> dict | None:
    """TF_CONFIG's cluster when it names more than one task, else None."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        cluster = json.loads(text).get("cluster", {})
    except (ValueError, AttributeError):
        raise ConfigError("TF_CONFIG: is not a JSON object with a 'cluster' key") from None
    tasks = sum(len(addresses) for addresses in cluster.values())
    return cluster if tasks > 1 else None


def _strategy(setting: str, source) -> tuple[tf.distribute.Strategy, str]:
    cluster = cluster_from_env()
    if setting == "multi_worker" or (setting == "auto" and cluster):
        if not cluster:
            raise ConfigError(
                f"{source}: train.strategy: multi_worker needs TF_CONFIG to describe a "
                "cluster of two or more tasks (see README, 'Several hosts')"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(addresses) for addresses in cluster.values())
        return strategy, (
            f"strategy: multi-worker mirrored over {workers} workers, "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    gpus = tf.config.list_logical_devices("GPU")
    if setting == "mirrored" or (setting == "auto" and len(gpus) > 1):
        # Without GPUs, every logical CPU device (a CPU split for testing, say).
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy, f"strategy: mirrored over {len(devices)} devices"
    return tf.distribute.get_strategy(), "strategy: one device"
