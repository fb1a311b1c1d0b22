"""Pictures from a trained generator: N samples streamed to PNG files, and latent walks
as a grid, a GIF and an MP4."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan import imaging
from dcgan.errors import DcganError
from dcgan.files import writing
from dcgan.files.reading import GiB, size_text
from dcgan.models.latents import latent_stream, seed_latent, walk
from dcgan.models.loaded import LoadedGenerator
from dcgan.storage.latent_files import LatentWriter

MAX_WALK_FRAMES = 2048  # frames of one interpolation, all held in memory for the GIF
MAX_WALK_BYTES = GiB  # the same frames' pixels, enlarged as the GIF shows them
WALK_MIN_SIDE = 128  # a walk's GIF frames are enlarged to this short side by default


# --- latents ------------------------------------------------------------------------------


def sample_classes(seed: int, count: int, num_classes: int, chosen: int | None) -> np.ndarray:
    """The class of each of count images: chosen for all, or drawn uniformly from a stream
    of the seed's own (apart from its latents', which stay those of `sample --seed`)."""
    if chosen is not None:
        return np.full(count, chosen, np.int16)
    rng = np.random.default_rng([seed, 1])
    return rng.integers(0, num_classes, count).astype(np.int16)


class ClassTags(Sequence[str]):
    """Each image's class name, made fit for a file name, when asked for."""

    def __init__(self, classes: np.ndarray, names: list[str]) -> None:
        self.classes = classes
        self.names = [writing.file_name_part(name, "class") for name in names]

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, index):
        return self.names[int(self.classes[index])]


# --- writing -------------------------------------------------------------------------------


class NumberedFiles(Sequence[Path]):
    """The files write_samples writes: 000000.png, 000001.png, ... in folder (and grid.png),
    each name made when asked for, so ten million samples are not ten million Paths. With
    tags (a conditional generator's class per image), 000000-cat.png, ..."""

    def __init__(
        self, folder: Path, count: int, grid: bool, tags: Sequence[str] | None = None
    ) -> None:
        self.folder, self.count, self.grid, self.tags = folder, count, grid, tags
        self.width = max(6, len(str(count - 1)))
        self.extra: tuple[Path, ...] = ()  # written after the images (latents.npy)

    def __len__(self) -> int:
        return self.count + self.grid + len(self.extra)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index >= self.count + self.grid:
            return self.extra[index - self.count - self.grid]
        if index == self.count:
            return self.folder / "grid.png"
        tag = f"-{self.tags[index]}" if self.tags is not None else ""
        return self.folder / f"{index:0{self.width}d}{tag}.png"

    def is_one(self, name: str) -> bool:
        """Whether a file called name in the folder is one of these."""
        if self.grid and name == "grid.png":
            return True
        stem, suffix = name[: self.width], name[self.width :]
        if self.tags is not None and suffix.startswith("-") and suffix.endswith(".png"):
            suffix = ".png"  # the tag is not checked: any class's file is replaced
        return suffix == ".png" and stem.isascii() and stem.isdigit() and int(stem) < self.count

    def refuse_existing(self, force: bool) -> None:
        """writing.refuse_existing for these files, from the folder's listing: as long as
        the folder is, however many files are asked for."""
        if force or not writing.check_folder(self.folder, "--out"):
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


@dataclass(frozen=True)
class SampleRequest:
    """Which images `sample` makes: count latents of the seed, or the rows of a latent
    file (--z), scaled by truncation; for a conditional generator, of class class_index
    or of a class per image drawn from the seed. save_latents: also latents.npy, the
    latents used, row i behind image i."""

    count: int
    seed: int = 0
    truncation: float = 1.0
    class_index: int | None = None
    latents: np.ndarray | None = None
    save_latents: bool = False

    def latent_batches(self, latent_dim: int, batch_size: int):
        if self.latents is None:
            yield from latent_stream(self.seed, self.count, latent_dim, batch_size, self.truncation)
            return
        for start in range(0, self.count, batch_size):
            rows = self.latents[start : min(start + batch_size, self.count)]
            yield (rows * np.float32(self.truncation)).astype(np.float32)


LATENTS_FILE = "latents.npy"


def write_samples(
    generator: LoadedGenerator,
    request: SampleRequest,
    out: Path,
    grid: bool,
    batch_size: int,
    force: bool,
) -> NumberedFiles:
    """request.count PNGs in out (and grid.png, and latents.npy), streamed so memory holds
    one batch at a time. A conditional generator's file names end with each image's
    class."""
    count = request.count
    classes = None
    tags = None
    if generator.conditional:
        classes = sample_classes(request.seed, count, len(generator.classes), request.class_index)
        tags = ClassTags(classes, generator.classes)
    files = NumberedFiles(out, count, grid, tags)
    files.refuse_existing(force)
    latents_path = out / LATENTS_FILE
    if request.save_latents:
        writing.refuse_existing([latents_path], force)
    writing.make_folder(out, "--out")
    saved = (
        LatentWriter(latents_path, count, generator.latent_dim) if request.save_latents else None
    )
    grid_tiles: list[np.ndarray] = []
    grid_limit = 1024  # a grid of more would be too large to look at
    index = 0
    try:
        for latents in request.latent_batches(generator.latent_dim, batch_size):
            chosen = None if classes is None else classes[index : index + len(latents)]
            for image in generator.images(latents, batch_size, chosen):
                imaging.save_png(image, files[index])
                if grid and len(grid_tiles) < grid_limit:
                    grid_tiles.append(image)
                index += 1
            if saved is not None:
                saved.add(latents)
    except BaseException as exc:
        if saved is not None:
            saved.close(failed=exc)
        raise
    if saved is not None:
        saved.close()
    if grid:
        imaging.save_png(imaging.make_grid(np.stack(grid_tiles)), files[count])
    if saved is not None:
        files.extra = (latents_path,)
    return files


def _walk_frames(seeds: int, steps: int, loop: bool) -> int:
    """The frames of a walk through seeds: segments share their end points."""
    segments = seeds if loop else seeds - 1
    return segments * (steps - 1) + (0 if loop else 1)


@dataclass(frozen=True)
class Walk:
    """A walk through latent space: from each seed's latent to the next (or through the
    rows of a latent file, in order), steps images per segment (both ends included), by
    slerp or lerp, and back to the first when loop."""

    seeds: tuple[int, ...]
    steps: int = 8
    method: str = "slerp"
    loop: bool = False
    # A conditional generator's classes along the walk, spread evenly over its frames: one
    # kept throughout, or several walked through. None: the first seed's class, as
    # `sample --seed S -n 1` draws it (seed 0 for a latent file, as `sample --z`).
    classes: tuple[int, ...] | None = None
    latents: np.ndarray | None = None  # --z: the waypoints instead of the seeds'
    latents_name: str = ""  # the file's, for the output names

    @property
    def waypoints(self) -> int:
        return len(self.latents) if self.latents is not None else len(self.seeds)

    @property
    def frames(self) -> int:
        """Frames of the GIF: segments share their end points."""
        return _walk_frames(self.waypoints, self.steps, self.loop)


def write_interpolation(
    generator: LoadedGenerator,
    route: Walk,
    out: Path,
    fps: float,
    batch_size: int,
    force: bool,
    scale: int | None = None,
) -> list[Path]:
    """A walk through the seeds' latents as a grid (one row per segment, at the images'
    own size) and a GIF (and an MP4 when imageio's ffmpeg plugin is installed) of frames
    enlarged scale times; None: enough for a short side of WALK_MIN_SIDE."""
    frames_count = route.frames
    scale = scale or imaging.scale_to_reach(*generator.image_shape[:2], WALK_MIN_SIDE)
    through = f"{route.waypoints} {'latents' if route.latents is not None else 'seeds'}"
    makes = f"--steps {route.steps} through {through} makes {frames_count:,} frames"
    if frames_count > MAX_WALK_FRAMES:
        raise DcganError(
            f"{makes}, over the {MAX_WALK_FRAMES} a walk may have: lower --steps or give "
            "fewer --seeds"
        )
    frame_bytes = int(np.prod(generator.image_shape)) * scale**2
    if frames_count * frame_bytes > MAX_WALK_BYTES:
        height, width, channels = generator.image_shape
        raise DcganError(
            f"{makes} of {height * scale}x{width * scale}x{channels}"
            + (f" (enlarged {scale} times)" if scale > 1 else "")
            + f": {size_text(frames_count * frame_bytes)}, over the {size_text(MAX_WALK_BYTES)}"
            " a walk may hold: lower --steps"
            + (" or --scale" if scale > 1 else "")
            + " or give fewer --seeds"
        )
    start = f"z-{route.latents_name}" if route.latents is not None else _seeds_name(route.seeds)
    stem = f"{start}-{route.method}{'-loop' if route.loop else ''}"
    if generator.conditional:
        walked = route.classes or _class_weights_start(route, len(generator.classes))
        stem += "-class-" + "-".join(ClassTags(np.array(walked), generator.classes))
    grid_path, gif_path, mp4_path = (out / f"{stem}{ext}" for ext in (".png", ".gif", ".mp4"))
    video = imaging.can_write_mp4()
    writing.check_folder(out, "--out")
    writing.refuse_existing([grid_path, gif_path, *([mp4_path] if video else [])], force)

    if route.latents is not None:
        latents = list(route.latents)
    else:
        latents = [seed_latent(seed, generator.latent_dim) for seed in route.seeds]
    if route.loop:
        latents.append(latents[0])
    rows = walk(latents, route.steps, route.method)
    if generator.conditional:
        weights = _class_weights(route, len(generator.classes), frames_count)
        frame = 0
        for index, row in enumerate(rows):
            rows[index] = generator.blended_images(
                row, weights[frame : frame + len(row)], batch_size
            )
            frame += len(row) - 1  # the next row starts on this one's last frame
    else:
        rows = [generator.images(row, batch_size) for row in rows]
    writing.make_folder(out, "--out")
    imaging.save_png(imaging.make_grid(np.concatenate(rows), columns=route.steps), grid_path)
    # Segments share their end points: each shared frame is shown once.
    frames = [imaging.enlarge(frame, scale) for row in rows for frame in row[:-1]]
    if not route.loop:
        frames.append(imaging.enlarge(rows[-1][-1], scale))
    imaging.save_gif(frames, gif_path, fps=fps, hold_last=1.0 / fps)
    written = [grid_path, gif_path]
    if video:
        imaging.save_mp4(frames, mp4_path, fps=fps)
        written.append(mp4_path)
    return written


def _class_weights_start(route: Walk, num_classes: int) -> tuple[int]:
    seed = route.seeds[0] if route.latents is None else 0
    return (int(sample_classes(seed, 1, num_classes, None)[0]),)


def _class_weights(route: Walk, num_classes: int, frames: int) -> np.ndarray:
    """(frames, num_classes): each frame's weighting of the classes, moving evenly from
    one of route.classes to the next over the whole walk."""
    waypoints = route.classes or _class_weights_start(route, num_classes)
    one_hot = np.eye(num_classes, dtype=np.float32)[list(waypoints)]
    if len(waypoints) == 1:
        return np.repeat(one_hot, frames, axis=0)
    position = np.linspace(0.0, len(waypoints) - 1, frames)
    before = np.minimum(position.astype(int), len(waypoints) - 2)
    t = (position - before)[:, None].astype(np.float32)
    return (1 - t) * one_hot[before] + t * one_hot[before + 1]


def _seeds_name(seeds: Sequence[int]) -> str:
    """seeds-3-17-42; a long list as its ends, its length and a digest, to fit a file name."""
    joined = "-".join(map(str, seeds))
    if len(joined) <= 100:
        return f"seeds-{joined}"
    digest = hashlib.sha256(joined.encode()).hexdigest()[:12]
    return f"seeds-{seeds[0]}-to-{seeds[-1]}-{len(seeds)}-seeds-{digest}"
