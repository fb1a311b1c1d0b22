"""How fast dcgan trains, generates and starts, on this machine: the README's table.

    .venv/bin/python scripts/bench.py [--rounds 5] [--sections e2e,overhead,...]

Everything runs in one process, and the variants of a measurement alternate round by
round, so that a slow spell of the machine hits all of them alike: compare the ratios
within one table, not figures from two runs (they differ by up to 20% between processes).
Each rate is the median over the rounds, with the spread (lowest-highest) beside it.

Sections (all by default): steps, e2e, pipeline, sample, cli, overhead.
- steps: a reference training step written the plain way (the TensorFlow tutorial's two
  GradientTapes, float32, Keras' own BatchNorm) against the project's step in float32 and
  in what train.precision/xla: auto picks here, and with XLA, for the tutorial model at 28
  and dcgan at 32, 64 and 128 (batch 64, one fixed batch: the step alone).
- e2e: `dcgan train` on the digits config with its default callbacks (progress, metrics
  every 50 steps, sample grid and loss plot every 500, checkpoint every 1000), timed from
  the end of its first step, against its own bare step.
- pipeline: decoding a folder of JPEGs, and the tf.data pipeline alone at 64x64x3,
  against what the dcgan-64 step consumes.
- sample: `dcgan sample` (generate and write PNGs); cli: `dcgan --help` and a config error,
  each as a fresh process.
- overhead: the loop around the step, on a stand-in for a fast accelerator (a model whose
  arithmetic is negligible): bare fit() at 1 and at the project's steps per call against
  `dcgan train` with its default side effects (evaluation off), each as the slope between
  a 1,000- and a 5,000-step run; then every side effect's cost per occurrence, on the
  training thread and on the background writer, in one 5,000-step run with evaluation.

FLOPs are counted from the layers' shapes: a forward pass is 2 x multiply-adds, a backward
pass twice its forward (gradients of inputs and of weights). Per training image the
reference costs 3G + 7D (G forward and back; D forward and back on the real and the fake
batch; a second pass back through D for G's loss), the project's step 3G + 8D (the updated
D judges the fakes again). % of peak divides by a large matrix product measured here in the
precision the row runs in.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan.runtime import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

from dcgan.config import Config  # noqa: E402
from dcgan.data.pipeline import make_dataset  # noqa: E402
from dcgan.data.sources import load_images  # noqa: E402
from dcgan.generation.loading import load_generator  # noqa: E402
from dcgan.generation.sampling import SampleRequest, write_samples  # noqa: E402
from dcgan.models.networks import build_discriminator, build_generator, forward_flops  # noqa: E402
from dcgan.training import loop as train_module  # noqa: E402
from dcgan.training.execution import KERAS_POLICY, Execution, plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DCGAN_BIN = Path(sys.executable).parent / "dcgan"
BATCH = 64
STEP_MODELS = [("tutorial", 28, 1), ("dcgan", 32, 3), ("dcgan", 64, 3), ("dcgan", 128, 3)]


# ---- measuring -------------------------------------------------------------------------


class Timed:
    """One variant under test: run(n) does n units of work and waits for them."""

    def __init__(self, name: str, run, units_per_call: int, min_seconds: float = 1.5):
        self.name, self.run, self.units = name, run, units_per_call
        self.min_seconds, self.calls, self.rates = min_seconds, 1, []

    def warm_up(self) -> None:
        self.run(1)  # traces and compiles
        began = time.perf_counter()
        self.run(3)
        once = max(time.perf_counter() - began, 1e-6) / 3
        self.calls = max(1, int(self.min_seconds / once))

    def round(self) -> None:
        began = time.perf_counter()
        self.run(self.calls)
        self.rates.append(self.calls * self.units / (time.perf_counter() - began))

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def alternate(variants: list[Timed], rounds: int) -> None:
    for variant in variants:
        variant.warm_up()
    for _ in range(rounds):
        for variant in variants:
            variant.round()


def matmul_peak(dtype: str, n: int = 2048, rounds: int = 5) -> float:
    """FLOP/s of a large matrix product in dtype: the machine's practical peak."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    product = tf.function(lambda a, b: tf.matmul(a, b))
    product(a, b).numpy()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - began)
    return 2 * n**3 / statistics.median(times)


def spread(rates: list[float]) -> str:
    return f"{min(rates):,.0f}-{max(rates):,.0f}"


def rate_row(what: str, rates: list[float], base: float, flops: float, peak: float) -> list:
    """A table row: median and spread of rates, the ratio to base, FLOPs and % of peak."""
    median = statistics.median(rates)
    return [
        what,
        f"{median:,.0f}",
        spread(rates),
        f"{median / base:.2f}x",
        f"{flops / 1e9:.2f}",
        f"{100 * median * flops / peak:.0f}%",
    ]


def step_flops(generator: keras.Model, discriminator: keras.Model, d_passes: int) -> int:
    """FLOPs per training image: 3G + d_passes x D (see the module's docstring)."""
    return 3 * forward_flops(generator) + d_passes * forward_flops(discriminator)


# ---- the training steps ----------------------------------------------------------------


def model_config(arch: str, size: int, channels: int) -> Config:
    return Config.model_validate(
        {"model": {"arch": arch}, "data": {"image_size": size, "channels": channels}},
        context={"check_data": False},
    )


def reference_step(config: Config):
    """The tutorial's step: one forward pass, two tapes, float32, nothing else."""
    keras.mixed_precision.set_global_policy("float32")
    generator = build_generator(config, fused_norm=False)
    discriminator = build_discriminator(config, fused_norm=False)
    g_opt, d_opt = keras.optimizers.Adam(2e-4, 0.5), keras.optimizers.Adam(2e-4, 0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(images):
        z = tf.random.normal((BATCH, config.model.latent_dim))
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(z, training=True)
            real_out = discriminator(images, training=True)
            fake_out = discriminator(fake, training=True)
            g_loss = bce(tf.ones_like(fake_out), fake_out)
            d_loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
        g_vars, d_vars = generator.trainable_variables, discriminator.trainable_variables
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars, strict=True))
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars, strict=True))

    return step, generator, discriminator


def project_step(config: Config, precision: str, xla: bool):
    """The project's own step, as fit() runs it (Keras' train_function), on a fixed batch."""
    keras.mixed_precision.set_global_policy(KERAS_POLICY[precision])
    execution = Execution(precision, xla, tf.distribute.get_strategy())
    gan = train_module.build_gan(config, execution)
    keras.mixed_precision.set_global_policy("float32")
    gan.make_train_function()
    return gan


def step_runner(step, images, variable):
    def run(calls: int) -> None:
        for _ in range(calls):
            step(images)
        variable.numpy()  # wait for the last step

    return run


def gan_runner(gan, images):
    iterator = iter(tf.data.Dataset.from_tensors(images).repeat())

    def run(calls: int) -> None:
        for _ in range(calls):
            gan.train_function(iterator)
        gan.step.numpy()

    return run


def bench_steps(rounds: int, auto: str, auto_xla: bool, peaks: dict, rows: list) -> dict:
    """Returns the img/s of the auto setting's project step per (arch, size)."""
    auto_rates = {}
    for arch, size, channels in STEP_MODELS:
        config = model_config(arch, size, channels)
        images = tf.random.uniform((BATCH, size, size, channels), -1.0, 1.0)
        reference, generator, discriminator = reference_step(config)
        run_reference = step_runner(reference, images, generator.variables[0])
        variants = [(Timed("reference", run_reference, BATCH), "float32", 7)]
        settings = dict.fromkeys([("float32", False), (auto, auto_xla), (auto, not auto_xla)])
        for precision, xla in settings:
            gan = project_step(config, precision, xla)
            is_auto = (precision, xla) == (auto, auto_xla)
            name = f"project {precision}{' XLA' if xla else ''}{' (auto)' if is_auto else ''}"
            timed = Timed(name, gan_runner(gan, images), BATCH)
            if is_auto:
                auto_rates[(arch, size)] = timed
            variants.append((timed, precision, 8))
        alternate([timed for timed, _, _ in variants], rounds)
        base = variants[0][0].median
        label = f"{arch}-{size}" + ("" if channels == 3 else f"x{channels}")
        for timed, precision, d_passes in variants:
            flops = step_flops(generator, discriminator, d_passes)
            what = f"step {label}: {timed.name}"
            rows.append(rate_row(what, timed.rates, base, flops, peaks[precision]))
        print(f"  measured {label}", file=sys.stderr)
    return {key: timed.median for key, timed in auto_rates.items()}


# ---- end to end ------------------------------------------------------------------------


class StepClock(keras.callbacks.Callback):
    """Appended after the run's own callbacks: the time each step (and its writes) ended."""

    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def rate(self, batch_size: int) -> float:
        return (len(self.ends) - 1) * batch_size / (self.ends[-1] - self.ends[0])


def bench_e2e(rounds: int, steps: int, workdir: Path, peaks: dict, rows: list) -> Path:
    """Alternates whole `dcgan train` runs with bare runs: the same model, data pipeline
    and fit() loop for the same steps, with no callback but the clock."""
    from dcgan.config import load
    from dcgan.storage.run_folder import create_run_dir

    overrides = [f"train.steps={steps}", f"output.dir={workdir}"]
    config = load(ROOT / "configs" / "digits.yaml", overrides)
    execution = plan(config.train)
    gan = train_module.build_gan(config, execution)
    keras.mixed_precision.set_global_policy("float32")
    batch = config.train.batch_size
    images = load_images(config.data)
    clocks, original = [], train_module._side_effects

    def with_clock(*args, **kwargs):
        clocks.append(StepClock())
        return [*original(*args, **kwargs), clocks[-1]]

    train_module._side_effects = with_clock
    bare_rates, e2e_rates, last_run = [], [], None
    try:
        for _ in range(rounds):
            clock = StepClock()
            dataset = make_dataset(images, batch, config.seed)
            gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
            bare_rates.append(clock.rate(batch))
            last_run = create_run_dir(config.output.dir, config.name)
            train_module.train(config, last_run, progress_stream=io.StringIO())
            e2e_rates.append(clocks[-1].rate(batch))
    finally:
        train_module._side_effects = original
    flops = step_flops(gan.generator, gan.discriminator, 8)
    peak, bare = peaks[execution.precision], statistics.median(bare_rates)
    what = f"digits-32x1 bare fit(), {steps} steps, no callbacks ({execution.precision})"
    rows.append(rate_row(what, bare_rates, bare, flops, peak))
    what = f"digits-32x1 `dcgan train`, {steps} steps, default callbacks"
    rows.append(rate_row(what, e2e_rates, bare, flops, peak))
    return last_run


# ---- loop overhead ---------------------------------------------------------------------

# A model whose arithmetic is negligible, on the digits config's intervals: what is left of
# a step's time is the loop around it, which a fast accelerator would otherwise wait for.
STAND_IN = (
    "data.image_size=28",
    "model.g_width=4",
    "model.d_width=4",
    "model.max_width=8",
    "model.latent_dim=8",
    "train.batch_size=8",
    "train.precision=float32",
)
SHORT_RUN, LONG_RUN = 1000, 5000


def stand_in(workdir: Path, steps: int, *extra: str) -> Config:
    from dcgan.config import load

    settings = [*STAND_IN, f"train.steps={steps}", f"output.dir={workdir}", *extra]
    return load(ROOT / "configs" / "digits.yaml", settings)


def bare_fit(config: Config, steps_per_call: int):
    """fit() of the project's DCGAN with no callbacks: run(steps) -> seconds."""
    keras.mixed_precision.set_global_policy("float32")
    gan = train_module.build_gan(config)
    gan.steps_per_execution = steps_per_call
    images = load_images(config.data)

    def run(steps: int) -> float:
        dataset = make_dataset(images, config.train.batch_size, config.seed)
        began = time.perf_counter()
        gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        gan.step.numpy()
        return time.perf_counter() - began

    run(steps_per_call)  # traces
    return run


def dcgan_train(workdir: Path, *extra: str):
    """A whole `dcgan train` in this process, in a new run folder: run(steps) -> seconds."""
    from dcgan.storage.run_folder import create_run_dir

    def run(steps: int) -> float:
        config = stand_in(workdir, steps, *extra)
        began = time.perf_counter()
        train_module.train(config, create_run_dir(config.output.dir, config.name), io.StringIO())
        return time.perf_counter() - began

    return run


def bench_overhead(rounds: int, workdir: Path) -> None:
    """ms per step as the slope between a short and a long run (start-up cancels out),
    the variants alternating round by round; then each side effect's cost per occurrence."""
    from dcgan.training.execution import step_flops, steps_per_execution

    config = stand_in(workdir, LONG_RUN)
    probe = train_module.build_gan(config)
    flops = step_flops(probe.generator, probe.discriminator, config)
    project_k = steps_per_execution(config, 0, flops)[0]
    variants = {
        "bare fit(), 1 step per call": (bare_fit(config, 1), None),
        f"bare fit(), {project_k} steps per call": (bare_fit(config, project_k), None),
        f"`dcgan train`, default side effects, eval off ({project_k} per call)": (
            dcgan_train(workdir, "eval.every=null"),
            f"bare fit(), {project_k} steps per call",
        ),
    }
    slopes: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (run, _) in variants.items():
            short, long = run(SHORT_RUN), run(LONG_RUN)
            slopes[name].append(1000 * (long - short) / (LONG_RUN - SHORT_RUN))
    print(f"\nloop overhead: {', '.join(STAND_IN)}; digits intervals; {rounds} rounds")
    print(f"ms per step = slope between {SHORT_RUN} and {LONG_RUN} steps\n")
    print("| what | ms/step (median) | spread | vs bare fit() at the same K |")
    print("|---|---:|---:|---:|")
    for name, (_, base) in variants.items():
        median = statistics.median(slopes[name])
        ratio = f"{median / statistics.median(slopes[base]):.2f}x" if base else ""
        spread = f"{min(slopes[name]):.2f}-{max(slopes[name]):.2f}"
        print(f"| {name} | {median:.2f} | {spread} | {ratio} |")
    profile_side_effects(stand_in(workdir, LONG_RUN))


def profile_side_effects(config: Config) -> None:
    """One `dcgan train` with evaluation, each callback's time on the training thread and
    its writer jobs' time, per occurrence."""
    import threading
    from collections import defaultdict

    from dcgan.storage.run_folder import create_run_dir
    from dcgan.training import writer as writer_module

    out, steps = config.output, config.train.steps
    every = {
        "DivergenceGuard": None,  # every call
        "Progress": out.log_every,
        "SampleGrids": out.sample_every,
        "Evaluation": config.eval.every,
        "HealthWatch": out.log_every,
        "MetricsLog": out.log_every,
        "LossPlot": out.sample_every,
        "Checkpoints": out.checkpoint_every,
    }
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # training, writer
    calls = [0]
    submitter = threading.local()
    original_effects, original_submit = (
        train_module._side_effects,
        writer_module.BackgroundWriter.submit,
    )

    def timed_callback(callback):
        name, inner = type(callback).__name__, callback.on_train_batch_end

        def on_train_batch_end(batch, logs=None):
            submitter.name = name
            began = time.perf_counter()
            inner(batch, logs)
            spent[name][0] += time.perf_counter() - began
            submitter.name = "end of run"  # what is submitted outside these calls
            if name == "DivergenceGuard":
                calls[0] += 1

        def on_train_end(logs=None, inner_end=callback.on_train_end):
            submitter.name = f"{name}, at the end"
            began = time.perf_counter()
            inner_end(logs)
            spent[submitter.name][0] += time.perf_counter() - began
            submitter.name = "end of run"

        callback.on_train_batch_end, callback.on_train_end = on_train_batch_end, on_train_end
        return callback

    def effects(*args, **kwargs):
        return [timed_callback(c) for c in original_effects(*args, **kwargs)]

    def submit(self, job):
        name = getattr(submitter, "name", "end of run")

        def timed_job():
            began = time.perf_counter()
            job()
            spent[name][1] += time.perf_counter() - began

        original_submit(self, timed_job)

    train_module._side_effects, writer_module.BackgroundWriter.submit = effects, submit
    try:
        train_module.train(config, create_run_dir(config.output.dir, "profile"), io.StringIO())
    finally:
        train_module._side_effects = original_effects
        writer_module.BackgroundWriter.submit = original_submit
    print(f"\nside effects of one {steps}-step `dcgan train` ({calls[0]} calls), ms each time")
    print("(end of run: progress.gif)\n")
    print("| side effect | every | training thread | background writer | total |")
    print("|---|---:|---:|---:|---:|")
    for name, interval in every.items():
        times = interval and steps // interval
        count = times or calls[0]
        training, background = (1000 * value / max(count, 1) for value in spent[name])
        what = f"{interval} steps" if interval else "call"
        print(
            f"| {name} | {what} | {training:.2f} | {background:.2f} | {training + background:.2f} |"
        )
    for name in sorted(n for n in spent if n not in every):  # once, as the run ends
        training, background = (1000 * value for value in spent[name])
        if training + background < 1.0:
            continue
        print(
            f"| {name} | once | {training:.2f} | {background:.2f} | {training + background:.2f} |"
        )


# ---- input pipeline, sampling, start-up -------------------------------------------------


def write_jpegs(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth when enlarged
        image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)


def bench_pipeline(rounds: int, workdir: Path, consumed: float, rows: list) -> None:
    folder = workdir / "jpegs"
    write_jpegs(folder, 2000, 96)
    config = Config.model_validate(
        {"data": {"source": "folder", "path": str(folder), "image_size": 64, "channels": 3}}
    )
    decode = Timed("decode", lambda calls: [load_images(config.data) for _ in range(calls)], 2000)
    decoded = load_images(config.data)
    iterator = iter(make_dataset(decoded, BATCH, seed=0))

    def batches(calls: int) -> None:
        for _ in range(calls * 10):
            next(iterator)

    pipeline = Timed("tf.data", batches, BATCH * 10)
    alternate([decode, pipeline], rounds)
    for timed, what in [
        (decode, "decode 2,000 JPEGs (96px -> 64x64x3), once per run"),
        (pipeline, "tf.data pipeline alone, 64x64x3 batches of 64"),
    ]:
        rows.append(
            [
                what,
                f"{timed.median:,.0f}",
                spread(timed.rates),
                f"{timed.median / consumed:.1f}x the dcgan-64 step",
                "",
                "",
            ]
        )


def bench_sample(rounds: int, run: Path, workdir: Path, rows: list) -> None:
    generator = load_generator(run.root)
    outputs = iter(range(10**6))

    def sample(calls: int) -> None:
        for _ in range(calls):
            out = workdir / "samples" / str(next(outputs))
            write_samples(generator, SampleRequest(256), out, False, 64, False)

    timed = Timed("sample", sample, 256)
    alternate([timed], rounds)
    what = "`dcgan sample -n 256` (digits, PNG files)"
    rows.append([what, f"{timed.median:,.0f}", spread(timed.rates), "", "", ""])


def bench_cli(rounds: int, workdir: Path, rows: list) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text("train:\n  batch_size: 0\n")
    commands = {
        "`dcgan --help`": [str(DCGAN_BIN), "--help"],
        "`dcgan train` with a config error": [str(DCGAN_BIN), "train", "--config", str(bad)],
    }
    for what, command in commands.items():
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, check=False)
            times.append(time.perf_counter() - began)
        rows.append(
            [
                f"{what} (seconds, fresh process)",
                f"{statistics.median(times):.2f} s",
                f"{min(times):.2f}-{max(times):.2f}",
                "",
                "",
                "",
            ]
        )


# ---- the table -------------------------------------------------------------------------


def print_table(rows: list, peaks: dict, device: str) -> None:
    print(f"device: {device}")
    print(
        "measured peak (2048x2048 matrix product): "
        + ", ".join(f"{name} {flops / 1e9:,.0f} GFLOP/s" for name, flops in peaks.items())
    )
    print()
    header = ["what", "img/s (median)", "spread", "ratio", "GFLOP/img", "% of peak"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores (CPU only)"
    return "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--e2e-steps", type=int, default=1000)
    parser.add_argument("--sections", default="steps,e2e,pipeline,sample,cli,overhead")
    args = parser.parse_args()
    sections = set(args.sections.split(","))

    defaults = Config().train
    execution = plan(defaults)
    keras.mixed_precision.set_global_policy("float32")
    print("auto here: " + execution.describe(), file=sys.stderr)
    precisions = ["float32"] + ([execution.precision] if execution.precision != "float32" else [])
    peaks = {precision: matmul_peak(precision) for precision in precisions}
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        consumed = None
        if "steps" in sections:
            rates = bench_steps(args.rounds, execution.precision, execution.xla, peaks, rows)
            consumed = rates[("dcgan", 64)]
        run = None
        if "e2e" in sections:
            run = bench_e2e(max(2, args.rounds // 2), args.e2e_steps, workdir, peaks, rows)
        if "pipeline" in sections:
            bench_pipeline(args.rounds, workdir, consumed or 1.0, rows)
        if "sample" in sections and run is not None:
            bench_sample(args.rounds, run, workdir, rows)
        if "cli" in sections:
            bench_cli(args.rounds, workdir, rows)
        if rows:
            print_table(rows, peaks, device_name())
        if "overhead" in sections:
            bench_overhead(args.rounds, workdir)


if __name__ == "__main__":
    main()
