"""Pictures from a trained generator: samples, latent walks, exports.

Every command accepts --ckpt as a run directory (its newest checkpoint, else its final
generator.keras), a checkpoint folder inside a run, or an exported generator .keras file.
Latents come from numpy's seeded generator, so a seed gives the same latents on any machine
and the same images whatever the batch size; seed s's first latent is also the latent
`interpolate` uses for s, so a walk's end points are exactly `sample --seed s -n 1`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import keras
import numpy as np

from dcgan import checkpoints, imaging, rundir
from dcgan.config import Config, load
from dcgan.errors import ConfigError, DcganError, RunDirError
from dcgan.rundir import RunDir


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
    if not path.exists():
        raise RunDirError(f"--ckpt {path}: no such file or directory")
    if path.is_dir() and (path / "config.yaml").is_file():
        return _from_run(RunDir(path))
    if path.is_dir() and (path / f"{rundir.CHECKPOINT_PREFIX}.index").is_file():
        run = RunDir(path.parent.parent)
        if not run.config.is_file():
            raise RunDirError(
                f"--ckpt {path}: a checkpoint outside a run (no config.yaml in {run.root})"
            )
        return _from_checkpoint(run, path)
    if path.is_file() and path.suffix == ".keras":
        return LoadedGenerator(_load_keras_file(path), str(path))
    raise RunDirError(
        f"--ckpt {path}: not a run directory, a checkpoint folder or a .keras generator file"
    )


def _from_run(run: RunDir) -> LoadedGenerator:
    latest = rundir.latest_checkpoint(run.checkpoints)
    if latest is not None:
        return _from_checkpoint(run, latest[1])
    if run.generator.is_file():
        return LoadedGenerator(_load_keras_file(run.generator), str(run.generator), run)
    raise RunDirError(f"--ckpt {run.root}: this run has no checkpoint and no generator.keras yet")


def _from_checkpoint(run: RunDir, path: Path) -> LoadedGenerator:
    from dcgan.models import inference_generator, standing_statistics

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
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged zip, a foreign file, unsafe layers: all one message
        raise RunDirError(f"--ckpt {path}: not a loadable Keras generator: {_gist(exc)}") from None
    if len(model.inputs) != 1 or len(model.output_shape) != 4:
        raise RunDirError(f"--ckpt {path}: not a generator (expects latents in, images out)")
    return model


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


def write_samples(
    generator: LoadedGenerator,
    count: int,
    seed: int,
    out: Path,
    grid: bool,
    truncation: float,
    batch_size: int,
    force: bool,
) -> list[Path]:
    """count PNGs in out (and grid.png), streamed so memory holds one batch at a time."""
    width = max(6, len(str(count - 1)))
    files = [out / f"{i:0{width}d}.png" for i in range(count)]
    grid_path = out / "grid.png"
    imaging.refuse_existing([*files, *([grid_path] if grid else [])], force)
    out.mkdir(parents=True, exist_ok=True)
    grid_tiles: list[np.ndarray] = []
    grid_limit = 1024  # a grid of more would be too large to look at
    index = 0
    for latents in latent_stream(seed, count, generator.latent_dim, batch_size, truncation):
        for image in generator.images(latents, batch_size):
            imaging.save_png(image, files[index])
            if grid and len(grid_tiles) < grid_limit:
                grid_tiles.append(image)
            index += 1
    written = list(files)
    if grid:
        imaging.save_png(imaging.make_grid(np.stack(grid_tiles)), grid_path)
        written.append(grid_path)
    return written


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
    stem = f"seeds-{'-'.join(map(str, seeds))}-{method}{'-loop' if loop else ''}"
    grid_path, gif_path, mp4_path = (out / f"{stem}{ext}" for ext in (".png", ".gif", ".mp4"))
    video = imaging.can_write_mp4()
    imaging.refuse_existing([grid_path, gif_path, *([mp4_path] if video else [])], force)

    latents = [seed_latent(seed, generator.latent_dim) for seed in seeds]
    if loop:
        latents.append(latents[0])
    rows = [generator.images(row, batch_size) for row in walk(latents, steps, method)]
    out.mkdir(parents=True, exist_ok=True)
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


def export_generator(generator: LoadedGenerator, fmt: str, out: Path, force: bool) -> Path:
    """The generator alone: a .keras file, or a TensorFlow SavedModel folder whose `serve`
    signature maps latents to images in [-1, 1]."""
    imaging.refuse_existing([out], force)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        if out.suffix != ".keras":
            raise DcganError(f"--out {out}: a Keras export must end in .keras")
        with imaging.atomic_path(out) as tmp:
            generator.model.save(tmp)
        return out
    with imaging.atomic_dir(out) as staging:
        generator.model.export(str(staging), format="tf_saved_model", verbose=False)
    return out
