"""Latent space: `dcgan project` finds the latent of a picture; `dcgan arithmetic` adds
and subtracts averaged latents, as in the DCGAN paper."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.cli.common import (
    ckpt_option,
    command_name,
    features_option,
    force_option,
    input_errors,
    seed_option,
    shown,
)
from dcgan.errors import DcganError, printable
from dcgan.runtime import import_tensorflow

MAX_IMAGES = 1000  # pictures projected in one call


@click.command(short_help="Find the latent of a picture: z.npy, the projected image, a GIF.")
@ckpt_option
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder; each picture gets OUT/<its name>/. Default: <run>/projected/.",
)
@click.option(
    "--class",
    "class_name",
    help="For a conditional run: the class to project into (name or index). Default: "
    "every class is tried and the best kept.",
)
@click.option(
    "--iterations",
    type=click.IntRange(1, 100_000),
    default=300,
    show_default=True,
    help="Adam steps per picture.",
)
@click.option(
    "--starts",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Random starting latents, optimised side by side; the best is kept.",
)
@features_option(
    "The feature space of the feature loss (as evaluate's): auto is Inception when its "
    "weights are at hand, else the random network."
)
@seed_option
@force_option
def project(
    ckpt: Path,
    images: tuple[Path, ...],
    out: Path | None,
    class_name: str | None,
    iterations: int,
    starts: int,
    features: str,
    seed: int,
    force: bool,
) -> None:
    """Find, for each picture, a latent whose generated image matches it: Adam on z from
    several random starts, on a pixel loss plus a feature loss. The picture is prepared as
    the run's training images are (size, channels, crop or pad).

    \b
    Writes OUT/<name>/z.npy, projected.png, compare.png and progress.gif; then
      dcgan sample --ckpt RUN --z OUT/<name>/z.npy   gives the projected image back.

    \b
    Example:
      dcgan project --ckpt runs/00000-digits picture.png --out projected
    """
    if len(images) > MAX_IMAGES:
        raise click.BadParameter(f"{len(images)} pictures; project at most {MAX_IMAGES} at a time")
    import_tensorflow()
    from dcgan.data.sources import decode_image
    from dcgan.files import writing
    from dcgan.generation import projection
    from dcgan.generation.loading import load_generator, run_config
    from dcgan.metrics.evaluation import require_run
    from dcgan.metrics.features import make_extractor

    with input_errors():
        generator = load_generator(ckpt)
        data = run_config(require_run(generator)).data
        index = None if class_name is None else generator.class_index(class_name)
        extractor = make_extractor(features)
        out = out or generator.run.root / "projected"
        folders = _folders(images, out)
        for folder in folders.values():
            writing.refuse_existing([folder / n for n in projection.PROJECTION_FILES], force)

        def target(path: Path):
            decoded = decode_image(path, data)
            if isinstance(decoded, str):
                raise DcganError(f"{printable(str(path))}: cannot be used: {decoded}")
            return decoded

        for path in images:  # every picture checked before the first is projected
            target(path)
        settings = projection.ProjectionSettings(steps=iterations, starts=starts, seed=seed)
        for path in images:
            picture = target(path)  # decoded again: memory holds one picture at a time
            with click.progressbar(
                length=iterations,
                label=f"projecting {shown(path)}",
                file=click.get_text_stream("stderr"),
            ) as bar:
                result = projection.project(
                    generator, picture, extractor, settings, index, lambda _: bar.update(1)
                )
            written = projection.write_projection(result, picture, folders[path])
            of_class = ""
            again = f"{command_name()} sample --ckpt {shown(ckpt)} --z {shown(written[0])}"
            if result.class_index is not None:
                name = generator.classes[result.class_index]
                of_class = f", class {name}"
                again += f" --class {result.class_index}"
            files = ", ".join(projection.PROJECTION_FILES)
            click.echo(
                f"{shown(path)}: PSNR {result.psnr:.2f} dB{of_class}; wrote "
                f"{shown(folders[path])}/ ({files}); again: {again}"
            )


def _folders(images: tuple[Path, ...], out: Path) -> dict[Path, Path]:
    """OUT/<stem> for each picture; pictures with the same stem get -2, -3 ..."""
    from dcgan.files.writing import file_name_part

    folders: dict[Path, Path] = {}
    used: set[str] = set()
    for path in images:
        stem = file_name_part(path.stem, "image", 60)
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        folders[path] = out / name
    return folders


@click.command(short_help='Latent vector arithmetic, "A - B + C": a labelled figure.')
@ckpt_option
@click.argument("expression")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for arithmetic.png and result.npy. Default: <run>/arithmetic/<expression>/.",
)
@click.option(
    "--class",
    "class_name",
    help="For a conditional run: the class of every image (name or index). Default: the "
    "first class.",
)
@seed_option
@force_option
def arithmetic(
    ckpt: Path,
    expression: str,
    out: Path | None,
    class_name: str | None,
    seed: int,
    force: bool,
) -> None:
    """Vector arithmetic on latents (Radford et al., 2015): EXPRESSION is terms joined by
    + and - (with a space on each side); each term is comma-separated seeds (the latents of
    `dcgan sample --seed S -n 1`) or a .npy file of latents (from `sample --save-z` or
    `project`), averaged. Writes a figure of each term's images and average, the result
    and small perturbations of it (--seed draws them), and result.npy.

    \b
    Examples:
      dcgan arithmetic --ckpt runs/00000-digits "3,17,42 - 5,8,13 + 21,34,55"
      dcgan arithmetic --ckpt runs/00000-digits "projected/a/z.npy - 5 + 7"
    """
    import_tensorflow()
    from dcgan.cli.common import default_out
    from dcgan.files import writing
    from dcgan.generation import arithmetic as vectors
    from dcgan.generation.loading import load_generator

    with input_errors():
        generator = load_generator(ckpt)
        index = None if class_name is None else generator.class_index(class_name)
        if generator.conditional and index is None:
            index = 0
        terms = vectors.parse(expression, generator.latent_dim)
        out = out or default_out(generator, f"arithmetic/{_folder_name(expression)}")
        writing.refuse_existing([out / "arithmetic.png", out / "result.npy"], force)
        written = vectors.write_arithmetic(generator, terms, out, seed, index)
    click.echo(
        f"{' '.join(('+' if t.sign > 0 else '-') + ' ' + printable(t.text) for t in terms)}: "
        f"{len(terms)} terms averaged; wrote {shown(written[0])} and {shown(written[1])}; "
        f"the result again: {command_name()} sample --ckpt {shown(ckpt)} --z {shown(written[1])}"
        + (f" --class {index}" if index is not None else "")
    )


def _folder_name(expression: str) -> str:
    import hashlib
    import re

    name = re.sub(
        r"[^A-Za-z0-9.,_-]+", "_", expression.replace(" - ", "-minus-").replace(" + ", "-plus-")
    ).strip("._")
    if len(name) > 80:
        name = name[:60] + "-" + hashlib.sha256(expression.encode()).hexdigest()[:12]
    return name or "expression"
