"""Pictures from a trained generator: `dcgan sample`, `interpolate` and `export`."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.cli.common import (
    MAX_SEEDS,
    MAX_STEPS,
    FiniteFloatRange,
    InputError,
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
from dcgan.errors import DcganError, shorten
from dcgan.files.reading import size_text
from dcgan.files.writing import file_name_part
from dcgan.runtime import import_tensorflow


@click.command(short_help="Write N images from a trained generator as PNG files.")
@ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    help="Number of images, written one batch at a time (disk is the only bound). "
    "Default: 64, or with --z one per row of the file.",
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
@click.option(
    "--z",
    "z_file",
    type=click.Path(path_type=Path),
    help="A .npy of float32 latents (N, latent_dim): image i from row i, instead of the "
    "seed's latents (e.g. latents.npy from --save-z, or project's z.npy).",
)
@click.option(
    "--save-z",
    is_flag=True,
    help="Also write latents.npy: the latents used, row i behind image i, to make an "
    "image again later with --z.",
)
@batch_size_option
@force_option
def sample(
    ckpt: Path,
    count: int | None,
    seed: int,
    out: Path | None,
    grid: bool,
    truncation: float,
    class_name: str | None,
    z_file: Path | None,
    save_z: bool,
    batch_size: int,
    force: bool,
) -> None:
    """Write N images from a trained generator as PNG files (and a grid).

    \b
    Examples:
      dcgan sample --ckpt runs/00003-biked -n 64 --grid
      dcgan sample --ckpt runs/00001-digits-conditional --class 7 -n 16 --grid
      dcgan sample --ckpt runs/00003-biked -n 16 --save-z
      dcgan sample --ckpt runs/00003-biked --z runs/00003-biked/generated/seed-0/latents.npy
    """
    import_tensorflow()
    from dcgan.generation.loading import load_generator
    from dcgan.generation.sampling import ClassTags, SampleRequest, write_samples
    from dcgan.storage.latent_files import read_latents

    with input_errors():
        generator = load_generator(ckpt)
        index = None if class_name is None else generator.class_index(class_name)
        latents = None if z_file is None else read_latents(z_file, generator.latent_dim)
        if latents is not None and count is not None and count > len(latents):
            raise DcganError(
                f"-n {count}: --z {shown(z_file)} holds {len(latents)} latents; give -n "
                f"{len(latents)} or fewer, or leave -n out"
            )
        count = count or (len(latents) if latents is not None else 64)
        # Each source of latents, truncation and class its own folder: the README's
        # examples run one after another.
        folder = f"seed-{seed}" if latents is None else f"z-{_stem(z_file)}"
        folder += f"-truncation-{truncation:g}" if truncation != 1.0 else ""
        if index is not None:
            folder += f"-class-{ClassTags([index], generator.classes)[0]}"
        out = out or default_out(generator, f"generated/{folder}")
        request = SampleRequest(count, seed, truncation, index, latents, save_z)
        written = write_samples(generator, request, out, grid, batch_size, force)
    of_class = "" if index is None else f" of class {generator.classes[index]}"
    from_z = "" if z_file is None else f" (latents from {shown(z_file)})"
    report(
        written,
        f"{count} images{of_class} of {'x'.join(map(str, generator.image_shape))} "
        f"from {shown(Path(generator.source))}{from_z}",
    )


def _stem(path: Path) -> str:
    """A latent file's name for a folder: its stem, and its folder's when it is the
    generic latents.npy or z.npy (project writes DIR/<image>/z.npy)."""
    stem = path.stem if path.stem not in ("latents", "z") else f"{path.parent.name}-{path.stem}"
    return file_name_part(stem, "latents", 60)


def _parse_seeds(ctx, param, value: str | None) -> list[int] | None:
    if value is None:
        return None
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
    callback=_parse_seeds,
    help=f"Comma-separated seeds, 2 to {MAX_SEEDS}; each is the latent of "
    "`dcgan sample --seed S -n 1`. Default: 0,1,2,3.",
)
@click.option(
    "--z",
    "z_file",
    type=click.Path(path_type=Path),
    help="Walk through the rows of a .npy of float32 latents (N, latent_dim), in order, "
    "instead of seeds (2 rows or more).",
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
    "--scale",
    type=click.IntRange(1, 16),
    help="Enlarge the GIF's (and MP4's) frames K times, each pixel a KxK block. Default: "
    "enough for a short side of 128 px or more; the grid PNG keeps the images' own size.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for the grid and GIF. Default: <run>/interpolations/.",
)
@batch_size_option
@force_option
def interpolate(
    ckpt: Path,
    seeds: list[int] | None,
    z_file: Path | None,
    steps: int,
    method: str,
    loop: bool,
    class_names: str | None,
    fps: float,
    scale: int | None,
    out: Path | None,
    batch_size: int,
    force: bool,
) -> None:
    """Walk through latent space between seeds: a grid PNG (one row per segment) and a GIF.

    \b
    Examples:
      dcgan interpolate --ckpt runs/00003-biked --seeds 3,17,42 --loop
      dcgan interpolate --ckpt runs/00001-digits-conditional --seeds 5,5 --class 3,8
      dcgan interpolate --ckpt runs/00003-biked --z picked.npy
    """
    if seeds is not None and z_file is not None:
        raise InputError("--seeds and --z exclude each other: walk through seeds or a file")
    import_tensorflow()
    from dcgan.generation.loading import load_generator
    from dcgan.generation.sampling import Walk, write_interpolation
    from dcgan.storage.latent_files import read_latents

    with input_errors():
        generator = load_generator(ckpt)
        latents = None
        if z_file is not None:
            latents = read_latents(z_file, generator.latent_dim)
            if len(latents) < 2:
                raise DcganError(f"--z {shown(z_file)}: holds 1 latent; a walk needs 2 or more")
        seeds = seeds or [0, 1, 2, 3]
        out = out or default_out(generator, "interpolations")
        classes = None
        if class_names is not None:
            names = [class_names] if class_names in (generator.classes or []) else None
            names = names or [part.strip() for part in class_names.split(",") if part.strip()]
            classes = tuple(generator.class_index(name) for name in names)
        route = Walk(tuple(seeds), steps, method, loop, classes, latents, z_file and _stem(z_file))
        written = write_interpolation(generator, route, out, fps, batch_size, force, scale)
    through = (
        f"the {len(latents)} latents of {shown(z_file)}"
        if latents is not None
        else f"seeds {','.join(map(str, seeds))}"
    )
    report(written, f"a {method} walk through {through}")


@click.command(short_help="The generator as .keras, SavedModel, ONNX, TFLite or a web page.")
@ckpt_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["keras", "savedmodel", "onnx", "tflite", "web"]),
    default="keras",
    show_default=True,
    help="keras: one .keras file for keras.models.load_model; savedmodel: a TensorFlow "
    "SavedModel folder whose serve signature maps latents to images; onnx: for onnxruntime "
    "(Python, C++, C#, Java, browsers); tflite: for the LiteRT interpreter on phones; web: "
    "a folder with index.html that samples in the browser, offline (open it, or `dcgan "
    "view FOLDER`). onnx, tflite and web need the export extra (`.venv/bin/pip install -e "
    "'.[export]'` in the checkout) and are checked against the generator when written.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Default: <run>/export/generator.keras, generator_savedmodel, generator.onnx, "
    "generator.tflite or web.",
)
@click.option(
    "--runtime",
    type=click.Path(path_type=Path),
    help="For --format web: the onnxruntime-web .tgz (`npm pack onnxruntime-web@1.30.0`). "
    "Default: the cached one, fetched from npm the first time and checked against its "
    "published sha512.",
)
@force_option
def export(ckpt: Path, fmt: str, out: Path | None, runtime: Path | None, force: bool) -> None:
    """Export the generator alone, for serving: z (N, latent_dim) -> images in [-1, 1]
    (a conditional run's takes [z, class_index (N,)]).

    \b
    Examples:
      dcgan export --ckpt runs/00000-digits --format savedmodel
      dcgan export --ckpt runs/00000-digits --format onnx
      dcgan export --ckpt runs/00000-digits --format web
    """
    import_tensorflow()
    from dcgan.generation.export import FILE_NAMES, export_generator, written_size
    from dcgan.generation.loading import load_generator
    from dcgan.web.page import export_web_page

    if runtime is not None and fmt != "web":
        raise click.BadParameter("goes with --format web only", param_hint="--runtime")
    with input_errors():
        generator = load_generator(ckpt)
        out = out or default_out(generator, "export") / FILE_NAMES[fmt]
        if fmt == "web":
            written, agreement = out, export_web_page(generator, out, force, runtime)
        else:
            written, agreement = export_generator(generator, fmt, out, force)
    inputs = "[z, class_index]" if generator.conditional else "z"
    how = {
        "keras": "keras.models.load_model(path)",
        "savedmodel": f"m = tf.saved_model.load(path); m.serve({inputs})",
        "onnx": "onnxruntime.InferenceSession(path) (README: Using the generator elsewhere)",
        "tflite": "ai_edge_litert.interpreter.Interpreter(path).get_signature_runner()",
        "web": f"open {shown(written / 'index.html')} in a browser, or `dcgan view "
        f"{shown(written)}`",
    }[fmt]
    classes = ""
    if generator.conditional:
        names = shorten(", ".join(generator.classes), 80)
        classes = f", classes {names} as class_index 0..{len(generator.classes) - 1}"
    checked = ""
    if agreement is not None:
        checked = (
            f"; {agreement.runtime} gives the generator's images within "
            f"{agreement.max_difference:.2g} (tolerance {agreement.tolerance:g})"
        )
    click.echo(
        f"wrote {shown(written)} ({size_text(written_size(written))}, latent_dim "
        f"{generator.latent_dim}{classes}){checked}; "
        + ("" if fmt == "web" else "load it with ")
        + how
    )
