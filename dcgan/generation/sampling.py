"""Pictures from a trained generator: samples, latent walks, exports.

Every command accepts --ckpt as a run directory (its newest checkpoint, else its final
generator.keras), a checkpoint folder inside a run, or an exported generator .keras file.
Latents come from numpy's seeded generator, so a seed gives the same latents on any machine
and the same images whatever the batch size; seed s's first latent is also the latent
`interpolate` uses for s, so a walk's end points are exactly `sample --seed s -n 1`.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import keras
import numpy as np

from dcgan import imaging
from dcgan.config import MAX_IMAGE_SIZE, MAX_LATENT_DIM, Config, load
from dcgan.errors import ConfigError, DcganError, RunDirError
from dcgan.safe_files import (
    GiB,
    MiB,
    UnsafeFile,
    check_zip_members,
    open_regular,
    shorten,
    size_text,
)
from dcgan.storage import checkpoints, run_folder
from dcgan.storage.run_folder import RunDir

MAX_KERAS_BYTES = 2 * GiB  # a .keras file inflated: a generator's weights are far below
MAX_KERAS_CONFIG_BYTES = 4 * MiB  # config.json and metadata.json, read whole into memory
MAX_WALK_FRAMES = 2048  # frames of one interpolation, all held in memory for the GIF
MAX_WALK_BYTES = GiB  # the same frames' pixels


@dataclass
class LoadedGenerator:
    model: keras.Model
    source: str  # what was loaded, for messages
    run: RunDir | None = None

    @property
    def latent_dim(self) -> int:
        return int(self.model.input_shape[-1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.model.output_shape[1:])

    def images(self, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 images for float32 latents, computed batch_size at a time."""
        out = [
            imaging.to_uint8(self.model(latents[i : i + batch_size], training=False))
            for i in range(0, len(latents), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), np.uint8)


def load_generator(path: Path) -> LoadedGenerator:
    try:
        os.stat(path)
    except FileNotFoundError:
        raise RunDirError(f"--ckpt {path}: no such file or directory") from None
    except OSError as exc:  # a name too long, a loop of links, a folder without permission
        raise RunDirError(f"--ckpt {shorten(str(path), 200)}: {exc.strerror or exc}") from None
    if path.is_dir() and (path / "config.yaml").is_file():
        return _from_run(RunDir(path))
    if path.is_dir() and (path / f"{run_folder.CHECKPOINT_PREFIX}.index").is_file():
        run = RunDir(path.parent.parent)
        if not run.config.is_file():
            raise RunDirError(
                f"--ckpt {path}: a checkpoint outside a run (no config.yaml in {run.root})"
            )
        return _from_checkpoint(run, path)
    if path.suffix == ".keras":  # a FIFO or a folder of that name: _load_keras_file says so
        return LoadedGenerator(_load_keras_file(path), str(path))
    raise RunDirError(
        f"--ckpt {path}: not a run directory, a checkpoint folder or a .keras generator file"
    )


def _from_run(run: RunDir) -> LoadedGenerator:
    latest = run_folder.latest_checkpoint(run.checkpoints)
    if latest is not None:
        return _from_checkpoint(run, latest[1])
    if run.generator.exists():
        return LoadedGenerator(_load_keras_file(run.generator), str(run.generator), run)
    raise RunDirError(f"--ckpt {run.root}: this run has no checkpoint and no generator.keras yet")


def _from_checkpoint(run: RunDir, path: Path) -> LoadedGenerator:
    from dcgan.models.networks import inference_generator, standing_statistics

    config = run_config(run)
    generator = inference_generator(config)
    if config.model.ema is not None:  # the moving average is what the run samples from
        weights = [w.value for w in generator.weights]
        checkpoints.restore_checkpoint({"ema_weights": weights}, path, partial=True)
        standing_statistics(generator)  # as training's samples and generator.keras have
    else:
        checkpoints.restore_checkpoint({"generator": generator}, path, partial=True)
    return LoadedGenerator(generator, str(path), run)


def run_config(run: RunDir) -> Config:
    try:
        return load(run.config, check_data=False)
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None


def _load_keras_file(path: Path) -> keras.Model:
    """A .keras generator, measured before Keras inflates it (a zip bomb, a FIFO or a
    device are refused unread) and checked to map latents to images once loaded."""
    try:
        with open_regular(path, what="Keras file") as stream:
            is_zip = zipfile.is_zipfile(stream)
        if is_zip:
            check_zip_members(
                path,
                MAX_KERAS_BYTES,
                {"config.json": MAX_KERAS_CONFIG_BYTES, "metadata.json": MAX_KERAS_CONFIG_BYTES},
            )
    except UnsafeFile as exc:
        raise RunDirError(f"--ckpt {exc}") from None
    if not is_zip:
        raise RunDirError(f"--ckpt {path}: not a loadable Keras generator: not a zip archive")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged zip, a foreign file, unsafe layers: all one message
        raise RunDirError(f"--ckpt {path}: not a loadable Keras generator: {_gist(exc)}") from None
    problem = _not_a_generator(model)
    if problem:
        raise RunDirError(
            f"--ckpt {path}: not a generator: {problem} (a generator maps latents "
            "(None, latent_dim) to images (None, H, H, C) with C 1 or 3)"
        )
    return model


def _not_a_generator(model: keras.Model) -> str | None:
    """Which way model is not a generator, or None."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        return "its inputs and outputs are unknown"
    if len(inputs) != 1:
        return f"it has {len(inputs)} inputs"
    if len(outputs) != 1:
        return f"it has {len(outputs)} outputs"
    latent, image = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(latent) != 2 or latent[1] is None:
        return f"its input is {_shape(latent)}, not latents"
    if not 0 < latent[1] <= MAX_LATENT_DIM:
        return f"its latents have {latent[1]} values, over the {MAX_LATENT_DIM} allowed"
    if len(image) != 4 or image[1] is None or image[2] is None:
        return f"its output is {_shape(image)}, not images"
    if image[1] != image[2]:
        return f"its output is {_shape(image)}, images of {image[1]}x{image[2]}, not square"
    if image[3] not in (1, 3):
        return f"its images have {image[3]} channels, not 1 or 3"
    if image[1] > MAX_IMAGE_SIZE:
        return f"its images are {image[1]}x{image[2]}, over the {MAX_IMAGE_SIZE} allowed"
    return None


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _gist(exc: Exception, limit: int = 200) -> str:
    """The first sentences of an error message, cut at a sentence end near limit."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= limit:
        return text
    end = text.rfind(". ", 0, limit)
    return text[: end + 1] if end > 0 else text[:limit] + "..."


# --- latents ------------------------------------------------------------------------------


def latent_stream(
    seed: int, count: int, dim: int, chunk: int, truncation: float = 1.0
) -> Iterator[np.ndarray]:
    """count latents from N(0, 1) scaled by truncation, chunk at a time; numpy draws them in
    sequence, so the values do not depend on the chunk size."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        yield (rng.standard_normal((size, dim)) * truncation).astype(np.float32)


def seed_latent(seed: int, dim: int) -> np.ndarray:
    return next(latent_stream(seed, 1, dim, 1))[0]


def walk(latents: Sequence[np.ndarray], steps: int, method: str) -> list[np.ndarray]:
    """One row of `steps` latents per segment, each row from one seed to the next,
    both ends included."""
    blend = imaging.slerp if method == "slerp" else imaging.lerp
    ts = np.linspace(0.0, 1.0, steps)
    return [np.stack([blend(a, b, float(t)) for t in ts]) for a, b in pairwise(latents)]


# --- writing -------------------------------------------------------------------------------


class NumberedFiles(Sequence[Path]):
    """The files write_samples writes: 000000.png, 000001.png, ... in folder (and grid.png),
    each name made when asked for, so ten million samples are not ten million Paths."""

    def __init__(self, folder: Path, count: int, grid: bool) -> None:
        self.folder, self.count, self.grid = folder, count, grid
        self.width = max(6, len(str(count - 1)))

    def __len__(self) -> int:
        return self.count + self.grid

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index == self.count:
            return self.folder / "grid.png"
        return self.folder / f"{index:0{self.width}d}.png"

    def is_one(self, name: str) -> bool:
        """Whether a file called name in the folder is one of these."""
        if self.grid and name == "grid.png":
            return True
        stem, suffix = name[: self.width], name[self.width :]
        return suffix == ".png" and stem.isascii() and stem.isdigit() and int(stem) < self.count

    def refuse_existing(self, force: bool) -> None:
        """imaging.refuse_existing for these files, from the folder's listing: as long as
        the folder is, however many files are asked for."""
        if force or not imaging.check_folder(self.folder, "--out"):
            return
        first, found = None, 0
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if self.is_one(entry.name):
                    found += 1
                    first = entry.name if first is None else min(first, entry.name)
        if found:
            more = f" (and {found - 1} more)" if found > 1 else ""
            raise DcganError(
                f"{self.folder / first}{more} already exists: use --force to replace, "
                "or --out to write elsewhere"
            )


def write_samples(
    generator: LoadedGenerator,
    count: int,
    seed: int,
    out: Path,
    grid: bool,
    truncation: float,
    batch_size: int,
    force: bool,
) -> NumberedFiles:
    """count PNGs in out (and grid.png), streamed so memory holds one batch at a time."""
    files = NumberedFiles(out, count, grid)
    files.refuse_existing(force)
    imaging.make_folder(out, "--out")
    grid_tiles: list[np.ndarray] = []
    grid_limit = 1024  # a grid of more would be too large to look at
    index = 0
    for latents in latent_stream(seed, count, generator.latent_dim, batch_size, truncation):
        for image in generator.images(latents, batch_size):
            imaging.save_png(image, files[index])
            if grid and len(grid_tiles) < grid_limit:
                grid_tiles.append(image)
            index += 1
    if grid:
        imaging.save_png(imaging.make_grid(np.stack(grid_tiles)), files[count])
    return files


def _walk_frames(seeds: int, steps: int, loop: bool) -> int:
    """The frames of a walk through seeds: segments share their end points."""
    segments = seeds if loop else seeds - 1
    return segments * (steps - 1) + (0 if loop else 1)


def write_interpolation(
    generator: LoadedGenerator,
    seeds: Sequence[int],
    steps: int,
    method: str,
    loop: bool,
    out: Path,
    fps: float,
    batch_size: int,
    force: bool,
) -> list[Path]:
    """A walk through the seeds' latents as a grid (one row per segment) and a GIF
    (and an MP4 when imageio's ffmpeg plugin is installed)."""
    frames_count = _walk_frames(len(seeds), steps, loop)
    if frames_count > MAX_WALK_FRAMES:
        raise DcganError(
            f"--steps {steps} through {len(seeds)} seeds makes {frames_count:,} frames, over "
            f"the {MAX_WALK_FRAMES} a walk may have: lower --steps or give fewer --seeds"
        )
    frame_bytes = int(np.prod(generator.image_shape))
    if frames_count * frame_bytes > MAX_WALK_BYTES:
        raise DcganError(
            f"--steps {steps} through {len(seeds)} seeds makes {frames_count:,} frames of "
            f"{'x'.join(map(str, generator.image_shape))}: {size_text(frames_count * frame_bytes)}"
            f", over the {size_text(MAX_WALK_BYTES)} a walk may hold: lower --steps or give "
            "fewer --seeds"
        )
    stem = f"{_seeds_name(seeds)}-{method}{'-loop' if loop else ''}"
    grid_path, gif_path, mp4_path = (out / f"{stem}{ext}" for ext in (".png", ".gif", ".mp4"))
    video = imaging.can_write_mp4()
    imaging.check_folder(out, "--out")
    imaging.refuse_existing([grid_path, gif_path, *([mp4_path] if video else [])], force)

    latents = [seed_latent(seed, generator.latent_dim) for seed in seeds]
    if loop:
        latents.append(latents[0])
    rows = [generator.images(row, batch_size) for row in walk(latents, steps, method)]
    imaging.make_folder(out, "--out")
    imaging.save_png(imaging.make_grid(np.concatenate(rows), columns=steps), grid_path)
    # Segments share their end points: each shared frame is shown once.
    frames = [frame for row in rows for frame in row[:-1]]
    if not loop:
        frames.append(rows[-1][-1])
    imaging.save_gif(frames, gif_path, fps=fps, hold_last=1.0 / fps)
    written = [grid_path, gif_path]
    if video:
        imaging.save_mp4(frames, mp4_path, fps=fps)
        written.append(mp4_path)
    return written


def _seeds_name(seeds: Sequence[int]) -> str:
    """seeds-3-17-42; a long list as its ends, its length and a digest, to fit a file name."""
    joined = "-".join(map(str, seeds))
    if len(joined) <= 100:
        return f"seeds-{joined}"
    digest = hashlib.sha256(joined.encode()).hexdigest()[:12]
    return f"seeds-{seeds[0]}-to-{seeds[-1]}-{len(seeds)}-seeds-{digest}"


def export_generator(generator: LoadedGenerator, fmt: str, out: Path, force: bool) -> Path:
    """The generator alone: a .keras file, or a TensorFlow SavedModel folder whose `serve`
    signature maps latents to images in [-1, 1]."""
    if fmt == "keras" and out.suffix != ".keras":
        raise DcganError(f"--out {out}: a Keras export must end in .keras")
    imaging.refuse_existing([out], force)
    imaging.make_folder(out.parent)
    if fmt == "keras":
        with imaging.atomic_path(out) as tmp:
            generator.model.save(tmp)
        return out
    with imaging.atomic_dir(out) as staging:
        generator.model.export(str(staging), format="tf_saved_model", verbose=False)
    return out
