"""Grids, PNG and GIF writing, loss plots: numpy, PIL, imageio and matplotlib only."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dcgan.errors import DcganError, shorten
from dcgan.files.reading import MiB, open_regular
from dcgan.files.writing import atomic_path


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


def stacked(tables: Sequence[np.ndarray]) -> np.ndarray:
    """RGB tables one under another, each padded with white on the right to the widest."""
    widest = max(table.shape[1] for table in tables)
    return np.concatenate(
        [
            np.pad(table, ((0, 0), (0, widest - table.shape[1]), (0, 0)), constant_values=255)
            for table in tables
        ]
    )


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


def scale_to_reach(height: int, width: int, min_side: int) -> int:
    """The smallest whole enlargement that brings the shorter side to min_side or more."""
    return max(1, math.ceil(min_side / min(height, width)))


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """image (H, W, ...) with every pixel a scale x scale block: nearest neighbour, so that
    small images are shown bigger without blur."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


CAPTION = 14  # pixels of a strip of text (PIL's default font is 11 px tall)


def captioned_grid(
    cells: Sequence[np.ndarray | None],
    captions: Sequence[str],
    columns: int,
    titles: dict[int, str],
    min_side: int = 64,
) -> np.ndarray:
    """An RGB table of images, each with its caption underneath, and titles over the
    columns they start at (a title may run over the columns after it). None is an empty
    cell. Small images are enlarged (nearest neighbour, whole multiples) to at least
    min_side, so that a caption fits under each; the table widens where a title would
    run past its last column."""
    height, width = next(c for c in cells if c is not None).shape[:2]
    scale = scale_to_reach(height, width, min_side)
    cell_w, cell_h, gap = width * scale, height * scale + CAPTION, 2
    rows = math.ceil(len(cells) / columns)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles_end = [
        gap + column * (cell_w + gap) + math.ceil(measure.textlength(title)) + gap
        for column, title in titles.items()
    ]
    canvas = Image.new(
        "RGB",
        (
            max([gap + columns * (cell_w + gap), *titles_end]),
            CAPTION + gap + rows * (cell_h + gap),
        ),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(canvas)
    for column, title in titles.items():
        draw.text((gap + column * (cell_w + gap), 1), title, fill=(0, 0, 0))
    for index, (cell, caption) in enumerate(zip(cells, captions, strict=True)):
        row, column = divmod(index, columns)
        left, top = gap + column * (cell_w + gap), CAPTION + gap + row * (cell_h + gap)
        if cell is not None:
            canvas.paste(to_pil(enlarge(cell, scale)).convert("RGB"), (left, top))
        draw.text((left + 1, top + height * scale + 1), caption, fill=(0, 0, 0))
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


# The panels of losses.png and the series each shows. KID (near 0, a few thousandths apart)
# has a panel of its own: beside diversity and the copy rate (0..1) it would be a flat line.
PANELS = (
    ("losses", ("d_loss", "g_loss")),
    ("D(x), D(G(z)) and D's accuracy", ("d_real", "d_fake", "d_accuracy")),
    ("R1 penalty (part of d_loss)", ("r1",)),
    ("KID (lower is better)", ("kid",)),
    ("diversity and copy rate", ("diversity", "copy_rate")),
    ("ADA's augmentation probability p", ("ada_p",)),
)
MEASURED_NOW_AND_THEN = ("kid", "diversity", "copy_rate")


def loss_figure(series: dict[str, tuple[Sequence[int], Sequence[float]]], title: str = ""):
    """The figure of losses.png: one panel per group of PANELS that has data, each series
    against the steps it was measured at (series maps a name to (steps, values))."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    always = (PANELS[0][0], PANELS[1][0])  # the evaluation panels once measured
    shown = []
    for panel, names in PANELS:
        present = [name for name in names if series.get(name, ((), ()))[0]]
        if present or panel in always:
            shown.append((panel, present))
    figure = Figure(figsize=(4 * len(shown), 4.5), dpi=100)
    for index, (panel, names) in enumerate(shown):
        axis = figure.add_subplot(1, len(shown), index + 1)
        for name in names:
            steps, values = series[name]
            marker = "o" if name in MEASURED_NOW_AND_THEN else None
            axis.plot(steps, values, label=name, linewidth=1, marker=marker, markersize=3)
        axis.set_title(panel)
        if names == ["ada_p"]:
            axis.set_ylim(-0.02, 1.02)  # a probability: its whole range, so a move shows
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(loc="best", fontsize="small")
    if title:
        figure.suptitle(title)
    # Fixed margins: tight_layout measured every label again and took a third of the time.
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.86, wspace=0.22)
    return figure


def plot_losses(
    series: dict[str, tuple[Sequence[int], Sequence[float]]], path: Path, title: str = ""
) -> None:
    """losses.png: loss_figure written whole."""
    figure = loss_figure(series, title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


MAX_GRID_BYTES = 64 * MiB
MAX_GIF_FRAMES = 400  # frames held in memory at once; more grids are thinned evenly


@dataclass(frozen=True)
class ProgressGif:
    steps: list[int]  # of the frames
    skipped: list[str]  # "name: why" for each file of samples/ that is not a grid of the run
    thinned_from: int | None = None  # the grids there were, when more than MAX_GIF_FRAMES

    @property
    def frames(self) -> int:
        return len(self.steps)


def write_progress_gif(
    grids: Sequence[tuple[int, Path]], path: Path, fps: float = 8.0
) -> ProgressGif:
    """Sample grids (step, png) in step order, each frame labelled with its step. A file
    that is not one of the run's grids (unreadable, not a regular file, another size than
    most) is left out rather than failing the GIF; at most MAX_GIF_FRAMES are used."""
    skipped, opened = [], []
    for step, png in grids:
        try:
            opened.append((step, png, _image_format(png)))
        except (OSError, ValueError, SyntaxError, DcganError, Image.DecompressionBombError) as exc:
            skipped.append(f"{png.name}: {_why(exc, png)}")
    if not opened:
        return ProgressGif([], skipped)
    usual = Counter(shape for _, _, shape in opened).most_common(1)[0][0]
    kept = []
    for step, png, shape in opened:
        if shape == usual:
            kept.append((step, png))
        else:
            skipped.append(f"{png.name}: {shape}, not {usual} as the run's grids")
    frames, steps = [], []
    thinned_from = len(kept) if len(kept) > MAX_GIF_FRAMES else None
    for step, png in _thinned(kept, MAX_GIF_FRAMES):
        try:
            frames.append(label(_read_grid(png), f"step {step}"))
            steps.append(step)
        except (OSError, ValueError, SyntaxError, DcganError) as exc:
            skipped.append(f"{png.name}: {_why(exc, png)}")
    if frames:
        save_gif(frames, path, fps=fps)
    return ProgressGif(steps, skipped, thinned_from)


def _why(exc: Exception, path: Path) -> str:
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image file"
    text = str(exc).replace(f"{path}: ", "") or type(exc).__name__
    return shorten(text)


def _thinned(items: Sequence, limit: int) -> list:
    """At most limit items, evenly spaced, the first and the last always."""
    if len(items) <= limit:
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))
    return [items[i] for i in picks]


def _image_format(path: Path) -> str:
    """ "WxH MODE" from the file's header: what must match for frames to stack."""
    with open_regular(path, MAX_GRID_BYTES, "sample grid") as stream, Image.open(stream) as image:
        return f"{image.width}x{image.height} {image.mode}"


def _read_grid(path: Path) -> np.ndarray:
    with open_regular(path, MAX_GRID_BYTES, "sample grid") as stream, Image.open(stream) as image:
        image.load()
        return np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
