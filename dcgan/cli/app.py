"""The `dcgan` command. Each command parses, loads the config, calls one function and maps
errors to one line and exit code 2. TensorFlow is imported inside command bodies, so
`dcgan --help` and config errors answer at once."""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from dcgan import __version__
from dcgan import config as config_module
from dcgan.errors import DcganError, TrainingDiverged
from dcgan.runtime import import_tensorflow
from dcgan.safe_files import printable, shorten

EXIT_INTERRUPTED = 130


class InputError(click.ClickException):
    """One line on stderr and a non-zero exit: 2 for bad input, or the DcganError's own."""

    exit_code = 2

    @classmethod
    def of(cls, exc: DcganError) -> InputError:
        error = cls(printable(str(exc)))
        error.exit_code = exc.exit_code
        return error


def _setup_logging() -> None:
    logger = logging.getLogger("dcgan")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dcgan: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcgan")
def main() -> None:
    """Train Deep Convolutional GANs on your images and turn them into pictures."""
    _setup_logging()


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment YAML file (configs/*.yaml). Without it every key takes its default: "
    "the digits data and the DCGAN paper's settings.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    help="Continue this run directory from its latest checkpoint.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config value, e.g. --set train.steps=200 (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def train(
    config_path: Path | None, resume_dir: Path | None, overrides: tuple[str, ...], dry_run: bool
) -> None:
    """Train a DCGAN from a YAML config, or resume a run.

    \b
    Examples:
      dcgan train --config configs/digits.yaml
      dcgan train --config configs/biked.yaml --set train.steps=20000
      dcgan train --resume runs/00003-biked --set train.steps=40000
    """
    from dcgan.storage import run_folder

    if config_path is not None and resume_dir is not None:
        raise InputError("--config and --resume exclude each other: a run keeps its own config")
    try:
        if resume_dir is not None:
            run = run_folder.open_run_dir(resume_dir)
            config = config_module.load(
                run.config, overrides, frozen_keys=config_module.FROZEN_ON_RESUME
            )
        else:
            run = None
            config = config_module.load(config_path, overrides)
    except DcganError as exc:
        raise InputError.of(exc) from None
    if dry_run:
        click.echo(config.to_yaml(), nl=False)
        return

    import_tensorflow()
    from dcgan.training.execution import writes_the_run
    from dcgan.training.loop import train as train_run

    if not writes_the_run(config.train):
        # Another worker of a cluster: trains in step with the chief, keeps nothing.
        with run_folder.worker_scratch(run) as scratch:
            try:
                result = train_run(config, scratch)
            except DcganError as exc:
                raise InputError.of(exc) from None
        click.echo(f"worker finished at step {result.step}; the chief wrote the run")
        return

    new_run = run is None
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop is handled like Ctrl-C
    try:
        if run is None:
            run = run_folder.create_run_dir(config.output.dir, config.name)
        result = train_run(config, run)
    except DcganError as exc:
        # A run that diverged keeps its log and grids, to see what went wrong.
        if new_run and run is not None and not isinstance(exc, TrainingDiverged):
            run_folder.discard_unstarted_run(run)
        raise InputError.of(exc) from None
    except KeyboardInterrupt:  # before training began: nothing to save
        if new_run and run is not None:
            run_folder.discard_unstarted_run(run)
        click.echo("interrupted before training started", err=True)
        sys.exit(EXIT_INTERRUPTED)
    _summarise(result)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)


CKPT_HELP = (
    "A run directory (its newest checkpoint, else generator.keras), a checkpoint folder "
    "inside a run, or an exported generator .keras file."
)


def _ckpt_option(function):
    return click.option(
        "--ckpt", "ckpt", required=True, type=click.Path(path_type=Path), help=CKPT_HELP
    )(function)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf, which compare false with any bound
    and so slip through it."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{shorten(str(value))} is not a finite number.", param, ctx)
        return number


MAX_BATCH_SIZE = 1024
MAX_SEED = 2**32 - 1
MAX_SEEDS = 64  # seeds of one walk
MAX_STEPS = 256  # images per segment of a walk
MAX_EVAL_SAMPLES = config_module.MAX_EVAL_SAMPLES  # images scored at once, all in memory

_force_option = click.option("--force", is_flag=True, help="Replace files that already exist.")
_batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    default=64,
    show_default=True,
    help="Images generated at once: memory holds one batch, however many are asked for "
    f"(at most {MAX_BATCH_SIZE}).",
)


def _default_out(generator, folder: str) -> Path:
    """Beside the run it came from (never through a link planted in it), else in the
    working directory."""
    from dcgan.storage import run_folder

    if generator.run is None:
        return Path.cwd() / folder
    run_folder.refuse_links(generator.run)
    return generator.run.root / folder


def _report(written: Sequence[Path], what: str) -> None:
    """The first files and the last: written may name ten million without holding them."""
    click.echo(f"wrote {what}:")
    shown = list(written) if len(written) <= 6 else [*written[:3], None, *written[-2:]]
    for path in shown:
        click.echo("  ..." if path is None else f"  {_shown(path)}")


@main.command()
@_ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Number of images, written one batch at a time (disk is the only bound).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the latents: the same seed gives the same images.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for the PNGs. Default: <run>/generated/seed-<S>/.",
)
@click.option("--grid", is_flag=True, help="Also write grid.png with the images (first 1024).")
@click.option(
    "--truncation",
    type=FiniteFloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Scale of the latents: below 1 trades variety for quality.",
)
@_batch_size_option
@_force_option
def sample(
    ckpt: Path,
    count: int,
    seed: int,
    out: Path | None,
    grid: bool,
    truncation: float,
    batch_size: int,
    force: bool,
) -> None:
    """Write N images from a trained generator as PNG files (and a grid).

    \b
    Example:
      dcgan sample --ckpt runs/00003-biked -n 64 --grid
    """
    import_tensorflow()
    from dcgan.generation.sampling import load_generator, write_samples

    with _input_errors():
        generator = load_generator(ckpt)
        out = out or _default_out(generator, f"generated/seed-{seed}")
        written = write_samples(generator, count, seed, out, grid, truncation, batch_size, force)
    _report(
        written,
        f"{count} images of {'x'.join(map(str, generator.image_shape))} "
        f"from {_shown(Path(generator.source))}",
    )


def _parse_seeds(ctx, param, value: str) -> list[int]:
    parts = [part for part in value.split(",") if part.strip()]
    if len(parts) > MAX_SEEDS:
        raise click.BadParameter(
            f"{shorten(value)!r}: {len(parts):,} seeds, over the {MAX_SEEDS} a walk may have"
        )
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        raise click.BadParameter(
            f"{shorten(value)!r}: expected comma-separated integers, e.g. 3,17,42"
        ) from None
    if len(seeds) < 2 or any(not 0 <= seed <= MAX_SEED for seed in seeds):
        raise click.BadParameter(f"{shorten(value)!r}: give two or more seeds from 0 to {MAX_SEED}")
    return seeds


@main.command()
@_ckpt_option
@click.option(
    "--seeds",
    default="0,1,2,3",
    show_default=True,
    callback=_parse_seeds,
    help=f"Comma-separated seeds, 2 to {MAX_SEEDS}; each is the latent of "
    "`dcgan sample --seed S -n 1`.",
)
@click.option(
    "--steps",
    type=click.IntRange(2, MAX_STEPS),
    default=8,
    show_default=True,
    help=f"Images per segment, both ends included (at most {MAX_STEPS}; a walk has at most "
    "2048 frames).",
)
@click.option(
    "--method",
    type=click.Choice(["slerp", "lerp"]),
    default="slerp",
    show_default=True,
    help="slerp follows the sphere where Gaussian latents live; a straight lerp "
    "dips through low-norm latents the generator never saw.",
)
@click.option("--loop", is_flag=True, help="Walk back from the last seed to the first.")
@click.option("--fps", type=FiniteFloatRange(min=0.1, max=50), default=8.0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for the grid and GIF. Default: <run>/interpolations/.",
)
@_batch_size_option
@_force_option
def interpolate(
    ckpt: Path,
    seeds: list[int],
    steps: int,
    method: str,
    loop: bool,
    fps: float,
    out: Path | None,
    batch_size: int,
    force: bool,
) -> None:
    """Walk through latent space between seeds: a grid PNG (one row per segment) and a GIF.

    \b
    Example:
      dcgan interpolate --ckpt runs/00003-biked --seeds 3,17,42 --loop
    """
    import_tensorflow()
    from dcgan.generation.sampling import load_generator, write_interpolation

    with _input_errors():
        generator = load_generator(ckpt)
        out = out or _default_out(generator, "interpolations")
        written = write_interpolation(
            generator, seeds, steps, method, loop, out, fps, batch_size, force
        )
    _report(written, f"a {method} walk through seeds {','.join(map(str, seeds))}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--fps", type=FiniteFloatRange(min=0.1, max=50), default=5.0, show_default=True)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Use every K-th sample grid (the last one always).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="GIF file. Default: <run>/progress.gif."
)
@_force_option
def gif(run_dir: Path, fps: float, every: int, out: Path | None, force: bool) -> None:
    """Make a GIF of a run's sample grids in step order, also while it trains."""
    from dcgan import imaging
    from dcgan.storage import run_folder

    with _input_errors():
        run = run_folder.open_run_dir(run_dir)
        grids = run.sample_grids()
        if not grids:
            raise DcganError(f"{run_dir}: no sample grids yet (samples/step-*.png)")
        chosen = grids[::every]
        if chosen[-1] != grids[-1]:
            chosen.append(grids[-1])
        out = out or run.progress_gif
        imaging.refuse_existing([out], force)
        made = imaging.write_progress_gif(chosen, out, fps=fps)
        if not made.frames:
            raise DcganError(f"{run_dir}: no readable sample grid (first: {made.skipped[0]})")
    for reason in made.skipped[:3]:
        click.echo(f"left out samples/{reason}", err=True)
    if len(made.skipped) > 3:
        click.echo(f"left out {len(made.skipped) - 3} more file(s) of samples/", err=True)
    click.echo(
        f"wrote {_shown(out)}: {made.frames} frames, steps {made.steps[0]}..{made.steps[-1]}"
    )


@main.command()
@_ckpt_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["keras", "savedmodel"]),
    default="keras",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Default: <run>/export/generator.keras or <run>/export/generator_savedmodel.",
)
@_force_option
def export(ckpt: Path, fmt: str, out: Path | None, force: bool) -> None:
    """Export the generator alone, for serving: z (N, latent_dim) -> images in [-1, 1]."""
    import_tensorflow()
    from dcgan.generation.sampling import export_generator, load_generator

    with _input_errors():
        generator = load_generator(ckpt)
        name = "generator.keras" if fmt == "keras" else "generator_savedmodel"
        out = out or _default_out(generator, "export") / name
        written = export_generator(generator, fmt, out, force)
    how = (
        "keras.models.load_model(path)"
        if fmt == "keras"
        else "m = tf.saved_model.load(path); m.serve(z)"
    )
    click.echo(f"wrote {_shown(written)} (latent_dim {generator.latent_dim}); load it with {how}")


_features_option = click.option(
    "--features",
    type=click.Choice(["inception", "random"]),
    default="inception",
    show_default=True,
    help="Feature space: Keras' InceptionV3 pool features (the published standard), or "
    "a fixed random network that needs no download (scores compare only among themselves).",
)
_inception_weights_option = click.option(
    "--inception-weights",
    type=click.Path(path_type=Path),
    help="InceptionV3 no-top weights (.h5). Default: Keras' cache "
    "(~/.keras/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5).",
)


@main.command()
@_ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(10, MAX_EVAL_SAMPLES),
    default=10000,
    show_default=True,
    help=f"Generated images to score (at most {MAX_EVAL_SAMPLES}: all are held in memory).",
)
@click.option(
    "--max-real",
    type=click.IntRange(10, MAX_EVAL_SAMPLES),
    default=10000,
    show_default=True,
    help="Training images to compare with (a fixed random subset of larger data sets; at "
    f"most {MAX_EVAL_SAMPLES}).",
)
@_features_option
@_inception_weights_option
@_batch_size_option
def evaluate(
    ckpt: Path,
    count: int,
    max_real: int,
    features: str,
    inception_weights: Path | None,
    batch_size: int,
) -> None:
    """Score a generator against its run's training data: FID, KID (with its spread over
    subsets), precision/recall and the copy rate. Written to <run>/eval/ as JSON.

    \b
    Example:
      dcgan evaluate --ckpt runs/00003-biked/checkpoints/best
    """
    import_tensorflow()
    from dcgan.data.sources import load_images
    from dcgan.generation.sampling import load_generator, run_config
    from dcgan.metrics import evaluation
    from dcgan.metrics.features import make_extractor

    with _input_errors():
        generator = load_generator(ckpt)
        extractor = make_extractor(features, inception_weights)
        out = evaluation.results_path(generator, extractor)
        real = evaluation.real_subset(load_images(run_config(generator.run).data), max_real)
        results = evaluation.evaluate(generator, real, extractor, count, batch_size=batch_size)
        evaluation.write_results(results, out)
    click.echo(
        f"{_shown(Path(generator.source))} in {extractor.name}, {count} generated against "
        f"{len(real)} real images:\n"
        f"  FID {results['fid']:.3f}   KID {results['kid']:.5f} +- {results['kid_std']:.5f}\n"
        f"  precision {results['precision']:.3f}   recall {results['recall']:.3f}   "
        f"copy rate {results['copy_rate']:.3f}\n"
        f"wrote {_shown(out)}"
    )


COPYING = 0.2  # the copy rate above which `nearest` says the generator copies (eval's default)


@main.command()
@_ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Samples shown, one per row.",
)
@click.option(
    "-k",
    "neighbours",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Nearest training images shown per sample, in pixels and in features.",
)
@click.option(
    "--rate-samples",
    type=click.IntRange(10, MAX_EVAL_SAMPLES),
    default=1000,
    show_default=True,
    help=f"Samples the copy rate is measured on (at most {MAX_EVAL_SAMPLES}).",
)
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True)
@click.option(
    "--features",
    type=click.Choice(["auto", "inception", "random"]),
    default="auto",
    show_default=True,
    help="Feature space of the second set of neighbours: auto uses InceptionV3 when its "
    "weights are in Keras' cache, the fixed random network otherwise.",
)
@_inception_weights_option
@click.option("--out", type=click.Path(path_type=Path), help="Folder. Default: <run>/nearest/.")
@_force_option
def nearest(
    ckpt: Path,
    count: int,
    neighbours: int,
    rate_samples: int,
    seed: int,
    features: str,
    inception_weights: Path | None,
    out: Path | None,
    force: bool,
) -> None:
    """Has the generator copied its training images? A grid of samples, each beside its
    nearest training images (pixels, then features), and the copy rate: the share of
    samples closer to a training image than training images are to each other.

    \b
    Example:
      dcgan nearest --ckpt runs/00004-roses -n 8 -k 4
    """
    import_tensorflow()
    from dcgan.data.sources import load_images
    from dcgan.generation.sampling import load_generator, run_config
    from dcgan.metrics import evaluation
    from dcgan.metrics.features import make_extractor

    with _input_errors():
        generator = load_generator(ckpt)
        run = evaluation.require_run(generator)
        extractor = make_extractor(features, inception_weights)
        real = load_images(run_config(run).data)
        written, report = evaluation.write_nearest(
            generator, real, extractor, count, neighbours, rate_samples, seed,
            out or run.root / "nearest", force,
        )  # fmt: skip
    rate, threshold = report["copy_rate"], report["copy_threshold"]
    click.echo(
        f"copy rate {rate:.3f}: {rate:.1%} of {rate_samples} samples are nearer a training "
        f"image than {1 - report['copy_quantile']:.0%} of training images are to their own "
        f"nearest neighbour (pixel distance {threshold:.3f}); "
        + (
            "it is copying training images"
            if rate >= COPYING
            else f"below {COPYING}, but look at the grid"
        )
    )
    _report(written, f"{count} samples beside their {neighbours} nearest of {len(real)} "
            f"training images (pixels | {extractor.name})")  # fmt: skip


@main.command()
@click.argument("folder", type=click.Path(path_type=Path), default="runs")
def runs(folder: Path) -> None:
    """List the runs under an output folder: data, size, progress, last losses, state."""
    from dcgan.storage import run_folder

    with _input_errors():
        summaries = run_folder.list_runs(folder)
    if not summaries:
        click.echo(f"no runs in {folder}")
        return
    header = ("run", "data", "size", "step", "d_loss", "g_loss", "last sample", "state")
    rows = [header]
    for s in summaries:
        total = f"/{s.total_steps}" if s.total_steps is not None else ""
        rows.append(
            (
                printable(s.name),
                s.source,
                s.size,
                f"{s.step}{total}",
                f"{s.d_loss:.3f}" if s.d_loss is not None else "-",
                f"{s.g_loss:.3f}" if s.g_loss is not None else "-",
                s.last_sample,
                s.state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for s in summaries:
        if s.problem:
            click.echo(f"{s.name}: broken: {printable(s.problem)}")


@contextmanager
def _input_errors():
    """Bad input becomes one line and exit code 2; Ctrl-C leaves only whole files."""
    try:
        yield
    except DcganError as exc:
        raise InputError.of(exc) from None
    except KeyboardInterrupt:
        click.echo("interrupted: files written so far are complete", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _summarise(result) -> None:
    run = result.run
    root = _shown(run.root)
    grids = run.sample_grids()
    state = "interrupted" if result.interrupted else "finished" if result.finished else "stopped"
    lines = [
        f"{state} at step {result.step}/{result.total_steps} "
        f"({result.step - result.start_step} steps in {result.seconds:.0f} s): {root}"
    ]
    if grids:
        lines.append(
            f"  samples/         {len(grids)} grids of the fixed noise, "
            f"latest {_shown(grids[-1][1])}"
        )
    # An interrupted run's generator.keras and progress.gif are from an earlier finish.
    for path, what, current in (
        (run.progress_gif, "training progress as a GIF", result.finished),
        (run.losses_plot, "loss curves", True),
        (run.metrics, "losses and D outputs per step", True),
        (run.generator, "the trained generator", result.finished),
    ):
        if current and path.exists():
            lines.append(f"  {path.name:<16} {what}")
    from dcgan.storage.run_folder import latest_checkpoint

    latest = latest_checkpoint(run.checkpoints)
    if latest is not None:
        lines.append(f"  checkpoints/     latest {latest[1].name}")
    lines.append(f"  logs/            tensorboard --logdir {_shown(run.tensorboard)}")
    if result.finished:
        lines.append(
            f"open {_shown(run.progress_gif)} to watch it learn; "
            f"train further with: dcgan train --resume {root} --set train.steps=N"
        )
    else:
        lines.append(f"continue with: dcgan train --resume {root}")
    click.echo("\n".join(lines))


def _shown(path: Path) -> str:
    """Paths relative to the working directory when below it: shorter to read and copy;
    bytes that are not UTF-8 as backslash escapes."""
    try:
        return printable(str(path.relative_to(Path.cwd())))
    except ValueError:
        return printable(str(path))
