"""Pictures from a trained generator: `dcgan sample`, `interpolate` and `export`."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.cli.common import (
    MAX_SEEDS,
    MAX_STEPS,
    FiniteFloatRange,
    batch_size_option,
    ckpt_option,
    default_out,
    force_option,
    fps_option,
    input_errors,
    report,
    seed_option,
    shown,
)
from dcgan.errors import shorten
from dcgan.runtime import import_tensorflow


@click.command(short_help="Write N images from a trained generator as PNG files.")
@ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Number of images, written one batch at a time (disk is the only bound).",
)
@seed_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for the PNGs. Default: <run>/generated/seed-<S>/ (seed-<S>-truncation-<T>/ "
    "with --truncation).",
)
@click.option("--grid", is_flag=True, help="Also write grid.png with the images (first 1024).")
@click.option(
    "--truncation",
    type=FiniteFloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Scale of the latents: below 1 draws nearer the average latent, less varied "
    "images (on the digits default also fainter ones: see the README).",
)
@click.option(
    "--class",
    "class_name",
    help="For a conditional run: the class of every image, by name or index. Default: a "
    "class per image, drawn uniformly (its name ends the file name).",
)
@batch_size_option
@force_option
def sample(
    ckpt: Path,
    count: int,
    seed: int,
    out: Path | None,
    grid: bool,
    truncation: float,
    class_name: str | None,
    batch_size: int,
    force: bool,
) -> None:
    """Write N images from a trained generator as PNG files (and a grid).

    \b
    Examples:
      dcgan sample --ckpt runs/00003-biked -n 64 --grid
      dcgan sample --ckpt runs/00001-digits-conditional --class 7 -n 16 --grid
    """
    import_tensorflow()
    from dcgan.generation.loading import load_generator
    from dcgan.generation.sampling import ClassTags, write_samples

    with input_errors():
        generator = load_generator(ckpt)
        index = None if class_name is None else generator.class_index(class_name)
        # Each truncation and class its own folder: the README's examples run one after
        # another.
        folder = f"seed-{seed}" + (f"-truncation-{truncation:g}" if truncation != 1.0 else "")
        if index is not None:
            folder += f"-class-{ClassTags([index], generator.classes)[0]}"
        out = out or default_out(generator, f"generated/{folder}")
        written = write_samples(
            generator, count, seed, out, grid, truncation, batch_size, force, index
        )
    of_class = "" if index is None else f" of class {generator.classes[index]}"
    report(
        written,
        f"{count} images{of_class} of {'x'.join(map(str, generator.image_shape))} "
        f"from {shown(Path(generator.source))}",
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
    if len(seeds) < 2 or any(seed < 0 for seed in seeds):
        raise click.BadParameter(f"{shorten(value)!r}: give two or more seeds of 0 or more")
    return seeds


@click.command(short_help="Walk through latent space between seeds: a grid and a GIF.")
@ckpt_option
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
@click.option(
    "--class",
    "class_names",
    help="For a conditional run: the class kept along the walk, or comma-separated classes "
    "walked through (by name or index; e.g. 3,8). Default: the first seed's class, as "
    "`dcgan sample --seed S -n 1` draws it.",
)
@fps_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for the grid and GIF. Default: <run>/interpolations/.",
)
@batch_size_option
@force_option
def interpolate(
    ckpt: Path,
    seeds: list[int],
    steps: int,
    method: str,
    loop: bool,
    class_names: str | None,
    fps: float,
    out: Path | None,
    batch_size: int,
    force: bool,
) -> None:
    """Walk through latent space between seeds: a grid PNG (one row per segment) and a GIF.

    \b
    Examples:
      dcgan interpolate --ckpt runs/00003-biked --seeds 3,17,42 --loop
      dcgan interpolate --ckpt runs/00001-digits-conditional --seeds 5,5 --class 3,8
    """
    import_tensorflow()
    from dcgan.generation.loading import load_generator
    from dcgan.generation.sampling import Walk, write_interpolation

    with input_errors():
        generator = load_generator(ckpt)
        out = out or default_out(generator, "interpolations")
        classes = None
        if class_names is not None:
            names = [class_names] if class_names in (generator.classes or []) else None
            names = names or [part.strip() for part in class_names.split(",") if part.strip()]
            classes = tuple(generator.class_index(name) for name in names)
        route = Walk(tuple(seeds), steps, method, loop, classes)
        written = write_interpolation(generator, route, out, fps, batch_size, force)
    report(written, f"a {method} walk through seeds {','.join(map(str, seeds))}")


@click.command(short_help="Export the generator alone, as a .keras file or a SavedModel.")
@ckpt_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["keras", "savedmodel"]),
    default="keras",
    show_default=True,
    help="keras: one .keras file for keras.models.load_model; savedmodel: a TensorFlow "
    "SavedModel folder whose serve signature maps latents to images.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Default: <run>/export/generator.keras or <run>/export/generator_savedmodel.",
)
@force_option
def export(ckpt: Path, fmt: str, out: Path | None, force: bool) -> None:
    """Export the generator alone, for serving: z (N, latent_dim) -> images in [-1, 1]
    (a conditional run's takes [z, class_index (N,)]).

    \b
    Example:
      dcgan export --ckpt runs/00000-digits --format savedmodel
    """
    import_tensorflow()
    from dcgan.generation.export import export_generator
    from dcgan.generation.loading import load_generator

    with input_errors():
        generator = load_generator(ckpt)
        name = "generator.keras" if fmt == "keras" else "generator_savedmodel"
        out = out or default_out(generator, "export") / name
        written = export_generator(generator, fmt, out, force)
    inputs = "[z, class_index]" if generator.conditional else "z"
    how = (
        "keras.models.load_model(path)"
        if fmt == "keras"
        else f"m = tf.saved_model.load(path); m.serve({inputs})"
    )
    classes = ""
    if generator.conditional:
        names = shorten(", ".join(generator.classes), 80)
        classes = f", classes {names} as class_index 0..{len(generator.classes) - 1}"
    click.echo(
        f"wrote {shown(written)} (latent_dim {generator.latent_dim}{classes}); load it with {how}"
    )
