"""Grids, PNG and GIF writing, loss plots: numpy, PIL, imageio and matplotlib only."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dcgan.errors import DcganError, OutputError


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 in [0, 255]."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 in [0, 255] -> float32 in [-1, 1], the generator's range."""
    return np.asarray(images).astype(np.float32) / 127.5 - 1.0


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (rows*H, columns*W, C) image with a gap between tiles."""
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary name beside path, renamed onto it only once the writer has finished,
    so that a reader (or a crash) never meets half a file. A failed write (a full disk, no
    permission) leaves path as it was and is an OutputError naming path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # ".name.*.tmp*": rundir.TEMPORARY_PATTERN finds what a killed writer left.
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
        )
        os.close(fd)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """An empty staging folder beside path that takes path's name only once the writer has
    filled it: a folder under path's name is always complete."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # ".name.tmp*": rundir.TEMPORARY_PATTERN finds what a killed writer left.
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    except OSError as exc:
        raise _output_error(path, exc) from None
    retired = path.parent / f"{staging.name}.old"
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)
        if path.exists():
            path.rename(retired)  # aside, not rmtree'd: path is missing for two renames only
        staging.rename(path)
    except OSError as exc:
        if retired.exists() and not path.exists():
            retired.rename(path)  # the new folder could not take its place: keep the old
        raise _output_error(path, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.is_dir():
            shutil.rmtree(retired, ignore_errors=True)
        elif retired.exists():
            retired.unlink()


def _output_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}")


def refuse_existing(paths: Sequence[Path], force: bool) -> None:
    """Never overwrite without --force; checked before anything is written."""
    existing = [] if force else [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise DcganError(
            f"{existing[0]}{more} already exists: use --force to replace, or --out to write "
            "elsewhere"
        )


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def save_png(image: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        to_pil(image).save(tmp, format="PNG")


def label(image: np.ndarray, text: str) -> np.ndarray:
    """The image with a strip of text underneath (used to mark GIF frames with their step)."""
    pil = to_pil(image).convert("RGB")
    strip = 14
    canvas = Image.new("RGB", (pil.width, pil.height + strip), (0, 0, 0))
    canvas.paste(pil, (0, 0))
    ImageDraw.Draw(canvas).text((3, pil.height + 1), text, fill=(255, 255, 255))
    return np.asarray(canvas)


def save_gif(
    frames: Sequence[np.ndarray], path: Path, fps: float = 5.0, hold_last: float = 2.0
) -> None:
    """An endlessly looping GIF; the last frame stays hold_last seconds."""
    import imageio.v3 as iio

    frames = [np.asarray(f) for f in frames]
    if frames[0].ndim == 3 and frames[0].shape[-1] == 1:
        frames = [f[..., 0] for f in frames]
    durations = [1000.0 / fps] * len(frames)
    durations[-1] = max(durations[-1], hold_last * 1000.0)
    with atomic_path(path) as tmp:
        # Pillow's GIF writer takes one duration for a single frame, a list for several.
        duration = durations if len(frames) > 1 else durations[0]
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=duration, loop=0)


def can_write_mp4() -> bool:
    import importlib.util

    return importlib.util.find_spec("imageio_ffmpeg") is not None


def save_mp4(frames: Sequence[np.ndarray], path: Path, fps: float = 10.0) -> None:
    import imageio.v2 as imageio

    rgb = [np.repeat(f, 3, axis=-1) if f.shape[-1] == 1 else f for f in frames]
    with atomic_path(path) as tmp:
        # macro_block_size=1: keep the exact frame size instead of padding to 16.
        imageio.mimwrite(tmp, rgb, format="FFMPEG", fps=fps, macro_block_size=1)


OUTPUT_SERIES = ("d_real", "d_fake", "d_accuracy")
EVALUATION_SERIES = ("kid", "diversity", "copy_rate")


def plot_losses(
    series: dict[str, tuple[Sequence[int], Sequence[float]]], path: Path, title: str = ""
) -> None:
    """Loss curves, D's outputs and accuracy, and (once measured) the evaluation series,
    each against the steps it was measured at: series maps a name to (steps, values)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    evaluated = any(series.get(name, ((), ()))[0] for name in EVALUATION_SERIES)
    panels = 3 if evaluated else 2
    figure = Figure(figsize=(4 * panels, 4.5), dpi=100)
    axes = [figure.add_subplot(1, panels, i + 1) for i in range(panels)]
    losses, outputs = axes[0], axes[1]
    for name, (steps, values) in series.items():
        if not steps:
            continue
        if name in OUTPUT_SERIES:
            axis = outputs
        elif name in EVALUATION_SERIES:
            axis = axes[2]
        else:
            axis = losses
        marker = "o" if name in EVALUATION_SERIES else None
        axis.plot(steps, values, label=name, linewidth=1, marker=marker, markersize=3)
    losses.set_title("losses")
    outputs.set_title("D(x), D(G(z)) and D's accuracy")
    if evaluated:
        axes[2].set_title("evaluation")
    for axis in axes:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(loc="best", fontsize="small")
    if title:
        figure.suptitle(title)
    # Fixed margins: tight_layout measured every label again and took a third of the time.
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.86, wspace=0.22)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def load_image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)


def write_progress_gif(grids: Sequence[tuple[int, Path]], path: Path, fps: float = 5.0) -> int:
    """Sample grids (step, png) in step order, each frame labelled with its step."""
    frames = [label(load_image(png), f"step {step}") for step, png in grids]
    if frames:
        save_gif(frames, path, fps=fps)
    return len(frames)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: the path a Gaussian latent's norm would take."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (anti)parallel: the sphere gives no direction, the line does
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return ((1 - t) * a + t * b).astype(np.float32)
