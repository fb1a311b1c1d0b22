"""What the commands share: the one-line error, the options every generating command
takes, and how paths are shown."""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from dcgan.errors import DcganError, printable, shorten

EXIT_INTERRUPTED = 130


class InputError(click.ClickException):
    """One line on stderr and a non-zero exit: 2 for bad input, or the DcganError's own."""

    exit_code = 2

    @classmethod
    def of(cls, exc: DcganError) -> InputError:
        error = cls(printable(str(exc)))
        error.exit_code = exc.exit_code
        return error


CKPT_HELP = (
    "A run directory (its newest checkpoint, else generator.keras), a checkpoint folder "
    "inside a run, or an exported generator .keras file."
)


def _ckpt_exists(ctx, param, value: Path | None) -> Path | None:
    # Answered at once, before the command spends seconds importing TensorFlow; everything
    # else about the path is checked where it is loaded.
    if value is None:
        return value
    try:
        os.lstat(value)
    except FileNotFoundError:
        raise InputError(f"--ckpt {printable(str(value))}: no such file or directory") from None
    except (OSError, ValueError):
        pass  # a name too long, a NUL byte ...: the loader names the problem
    return value


def ckpt_option(function):
    return click.option(
        "--ckpt",
        "ckpt",
        required=True,
        type=click.Path(path_type=Path),
        callback=_ckpt_exists,
        help=CKPT_HELP,
    )(function)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf, which compare false with any bound
    and so slip through it."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{shorten(str(value))} is not a finite number.", param, ctx)
        return number


MAX_BATCH_SIZE = 1024  # images generated at once by sample, interpolate, evaluate, nearest
MAX_SEEDS = 64  # seeds of one walk
MAX_STEPS = 256  # images per segment of a walk
# Images scored by evaluate and nearest: 50,000 is FID-50k, the published protocol; every
# image and feature vector is held in memory at once (about 1 GB of features at 50,000).
MAX_SCORED = 50_000

# Options of several commands, defined once so that each has one default everywhere.
seed_option = click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the latents: the same seed gives the same images, those of "
    "`dcgan sample --seed S`.",
)
fps_option = click.option(
    "--fps",
    type=FiniteFloatRange(min=0.1, max=50),
    default=8.0,
    show_default=True,
    help="Frames per second of the GIF (and of the MP4 where one is written).",
)
FEATURES_HELP = (
    "Feature space: Keras' InceptionV3 pool features (the published standard; "
    "'inception' downloads its weights if they are not cached), or a fixed random network "
    "that needs no download (its scores compare only among themselves). auto: Inception "
    "when its weights are in Keras' cache, the random network otherwise; the output says "
    "which."
)


def features_option(text: str = FEATURES_HELP):
    """--features, one choice and default wherever a command measures in a feature space."""
    return click.option(
        "--features",
        type=click.Choice(["auto", "inception", "random"]),
        default="auto",
        show_default=True,
        help=text,
    )


force_option = click.option("--force", is_flag=True, help="Replace files that already exist.")
batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    default=64,
    show_default=True,
    help="Images generated at once: memory holds one batch, however many are asked for "
    f"(at most {MAX_BATCH_SIZE}).",
)


def default_out(generator, folder: str) -> Path:
    """Beside the run it came from (never through a link planted in it), else in the
    working directory."""
    from dcgan.storage import run_folder

    if generator.run is None:
        return Path.cwd() / folder
    run_folder.refuse_links(generator.run, (folder.split("/")[0],))
    return generator.run.root / folder


def report(written: Sequence[Path], what: str) -> None:
    """The first files and the last: written may name ten million without holding them."""
    click.echo(f"wrote {what}:")
    listed = list(written) if len(written) <= 6 else [*written[:3], None, *written[-2:]]
    for path in listed:
        click.echo("  ..." if path is None else f"  {shown(path)}")


@contextmanager
def input_errors():
    """Bad input becomes one line and exit code 2; Ctrl-C leaves only whole files."""
    try:
        yield
    except DcganError as exc:
        raise InputError.of(exc) from None
    except KeyboardInterrupt:
        click.echo("interrupted: files written so far are complete", err=True)
        sys.exit(EXIT_INTERRUPTED)


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def shown(path: Path) -> str:
    """Paths relative to the working directory when below it: shorter to read and copy;
    bytes that are not UTF-8 as backslash escapes."""
    try:
        return printable(str(path.relative_to(Path.cwd())))
    except ValueError:
        return printable(str(path))


def command_name() -> str:
    """How to run dcgan again from here: `dcgan` when it is on the PATH, else the script
    beside this Python (`.venv/bin/dcgan` after scripts/demo.sh, whose venv is not
    activated in the user's shell)."""
    if shutil.which("dcgan"):
        return "dcgan"
    script = Path(sys.executable).parent / "dcgan"
    return shown(script) if script.is_file() else "dcgan"
