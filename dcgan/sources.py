"""Data sources -> one uint8 array (N, size, size, channels), decoded once into memory.

numpy and PIL only: every source is read from files in its real published format, so the
readers are tested against small files that the tests write. Sources that must be
downloaded are looked for in Keras' cache first; only a missing copy triggers a download,
and with no network the error says which file to put where.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import tarfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dcgan.config import DataConfig
from dcgan.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
BACKGROUND = (255, 255, 255)  # transparent pixels become white, as on a product photo


def load_images(config: DataConfig) -> np.ndarray:
    """All training images of the configured source, as uint8 (N, size, size, channels)."""
    loaders: dict[str, Callable[[DataConfig], np.ndarray]] = {
        "folder": _load_folder,
        "digits": _load_digits,
        "mnist": _load_mnist,
        "fashion_mnist": _load_fashion_mnist,
        "cifar10": _load_cifar10,
        "stl10": _load_stl10,
    }
    images = loaders[config.source](config)
    if len(images) == 0:
        raise DataError(f"data.source {config.source}: no images found")
    return images


# --- image conversion -------------------------------------------------------------------


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any PIL image (1-bit, gray, 16-bit, palette, alpha, CMYK) as 8-bit L or RGB."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow clips 16-bit values when converting to L; scale them down instead.
        pixels = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((pixels >> 8 if pixels.max() > 255 else pixels).astype(np.uint8))
    elif image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    return image.convert("L" if channels == 1 else "RGB")


def fit_square(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to size x size."""
    if image.size == (size, size):
        return image
    side = min(image.size)
    cropped = ImageOps.fit(image, (side, side), method=Image.Resampling.BICUBIC)
    return cropped.resize((size, size), Image.Resampling.LANCZOS)


def _as_array(image: Image.Image, channels: int) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def resize_array(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> (N, size, size, channels)."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] == (size, size, channels):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, pixels in enumerate(images):
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        out[i] = _as_array(fit_square(to_mode(image, channels), size), channels)
    return out


def _limit(images: np.ndarray, config: DataConfig) -> np.ndarray:
    return images[: config.max_images] if config.max_images else images


# --- folder -------------------------------------------------------------------------------


def list_image_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )


MAX_UPSCALE = 8  # a smaller image (a 1x1 pixel, an icon for a 128 run) is not training data


def _decode(path: Path, size: int, channels: int) -> np.ndarray | str:
    """The image as an array, or the reason it could not be used."""
    try:
        with Image.open(path) as image:
            if min(image.size) * MAX_UPSCALE < size:
                return (
                    f"too small: {image.width}x{image.height} would be stretched over "
                    f"{MAX_UPSCALE}x to reach data.image_size {size}"
                )
            image.load()
            return _as_array(fit_square(to_mode(image, channels), size), channels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _load_folder(config: DataConfig) -> np.ndarray:
    folder = config.path
    files = list_image_files(folder)
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(f"data.path {folder}: no image files ({suffixes}) in this folder or below")
    if config.max_images:
        files = files[: config.max_images]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        decoded = list(pool.map(lambda p: _decode(p, config.image_size, config.channels), files))
    images = [d for d in decoded if isinstance(d, np.ndarray)]
    failures = [(p, d) for p, d in zip(files, decoded, strict=True) if isinstance(d, str)]
    if failures:
        path, reason = failures[0]
        log.warning(
            "skipped %d unreadable or too small file(s) of %d in %s (first: %s: %s)",
            len(failures),
            len(files),
            folder,
            path,
            reason,
        )
    if not images:
        path, reason = failures[0]
        raise DataError(
            f"data.path {folder}: none of the {len(files)} image files can be used "
            f"(first: {path.name}: {reason})"
        )
    log.info("read %d images from %s", len(images), folder)
    return np.stack(images)


# --- embedded and downloadable data sets ---------------------------------------------------


def _load_digits(config: DataConfig) -> np.ndarray:
    from sklearn.datasets import load_digits

    # 8x8 pixels of 0..16 ink, shipped inside scikit-learn: nothing to download.
    digits = load_digits().images
    images = np.round(digits * (255.0 / 16.0)).astype(np.uint8)
    return resize_array(_limit(images, config), config.image_size, config.channels)


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _first_existing(candidates: Iterable[Path]) -> Path | None:
    return next((path for path in candidates if path.exists()), None)


def _download(name: str, loader: str, expected: str) -> None:
    """Let keras.datasets fetch a data set into its cache, or say what to place where."""
    if os.environ.get("DCGAN_OFFLINE"):
        reason = "DCGAN_OFFLINE is set"
    else:
        import keras

        try:
            getattr(keras.datasets, loader).load_data()
            return
        except Exception as exc:  # any network failure reads the same to the user
            reason = f"download failed: {type(exc).__name__}"
    raise DataError(f"data.source {name}: no local copy and {reason}; place {expected}")


def _load_mnist(config: DataConfig) -> np.ndarray:
    candidates = [keras_cache_dir() / "mnist.npz"]
    if config.path is not None:
        candidates[:0] = [config.path, config.path / "mnist.npz"]
    path = _first_existing(p for p in candidates if p.is_file())
    if path is None:
        expected = f"mnist.npz (x_train, y_train, x_test, y_test) at {candidates[-1]}"
        _download("mnist", "mnist", expected)
        path = candidates[-1]
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = npz["x_train"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"data.source mnist: {path} is not a readable mnist.npz: {exc}") from None
    return resize_array(_limit(images, config), config.image_size, config.channels)


def read_idx_images(path: Path) -> np.ndarray:
    """A gzipped IDX3 file (the MNIST family's format) as uint8 (N, rows, cols)."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file: {exc}") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise DataError(f"{path}: not an IDX image file (magic number 2051 missing)")
    count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + count * rows * cols:
        raise DataError(f"{path}: truncated: header says {count} images of {rows}x{cols}")
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def _load_fashion_mnist(config: DataConfig) -> np.ndarray:
    filename = "train-images-idx3-ubyte.gz"
    folders = [keras_cache_dir() / "fashion-mnist"]
    if config.path is not None:
        folders.insert(0, config.path)
    folder = _first_existing(f for f in folders if (f / filename).is_file())
    if folder is None:
        _download("fashion_mnist", "fashion_mnist", f"{filename} in {folders[-1]}")
        folder = folders[-1]
    images = read_idx_images(folder / filename)
    return resize_array(_limit(images, config), config.image_size, config.channels)


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def _cifar_folder_candidates(config: DataConfig) -> list[Path]:
    cache = keras_cache_dir()
    roots = [cache, cache / "cifar-10-batches-py-target", cache / "cifar-10-batches-py_extracted"]
    if config.path is not None:
        roots.insert(0, config.path)
    return [folder for root in roots for folder in (root, root / "cifar-10-batches-py")]


def _read_cifar_batch(stream, where: str) -> np.ndarray:
    try:
        batch = pickle.load(stream, encoding="bytes")
        rows = np.asarray(batch[b"data"], dtype=np.uint8)
        return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except Exception as exc:  # a corrupt pickle can fail in many ways
        raise DataError(f"data.source cifar10: {where} is not a CIFAR-10 batch: {exc}") from None


def _load_cifar10(config: DataConfig) -> np.ndarray:
    if config.path is not None and config.path.is_file():
        images = _read_cifar_archive(config.path)
    else:
        candidates = _cifar_folder_candidates(config)
        folder = _first_existing(f for f in candidates if (f / CIFAR_BATCHES[0]).is_file())
        if folder is None:
            expected = (
                "cifar-10-python.tar.gz, extracted so that "
                f"{keras_cache_dir() / 'cifar-10-batches-py' / 'data_batch_1'} exists "
                "(or set data.path to the archive)"
            )
            _download("cifar10", "cifar10", expected)
            folder = _first_existing(f for f in candidates if (f / CIFAR_BATCHES[0]).is_file())
            if folder is None:
                raise DataError("data.source cifar10: downloaded, but no data_batch_1 was found")
        parts = []
        for name in CIFAR_BATCHES:
            if not (folder / name).is_file():
                raise DataError(f"data.source cifar10: {folder / name} is missing")
            with open(folder / name, "rb") as stream:
                parts.append(_read_cifar_batch(stream, str(folder / name)))
        images = np.concatenate(parts)
    return resize_array(_limit(images, config), config.image_size, config.channels)


def _read_cifar_archive(path: Path) -> np.ndarray:
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in CIFAR_BATCHES if name not in members]
            if missing:
                raise DataError(f"data.path {path}: archive lacks {', '.join(missing)}")
            return np.concatenate(
                [
                    _read_cifar_batch(archive.extractfile(members[name]), f"{path}:{name}")
                    for name in CIFAR_BATCHES
                ]
            )
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"data.path {path}: not a readable CIFAR-10 archive: {exc}") from None


STL10_FILES = ("train_X.bin", "unlabeled_X.bin")
STL10_SHAPE = (3, 96, 96)


def _load_stl10(config: DataConfig) -> np.ndarray:
    """STL-10's binary files: uint8, each image channel-major and column-major."""
    folder = config.path
    if (folder / "stl10_binary").is_dir():
        folder = folder / "stl10_binary"
    files = [folder / name for name in STL10_FILES if (folder / name).is_file()]
    if not files:
        raise DataError(
            f"data.path {config.path}: no STL-10 binary files; place "
            f"{' and/or '.join(STL10_FILES)} from stl10_binary.tar.gz in this folder"
        )
    per_image = int(np.prod(STL10_SHAPE))
    parts = []
    remaining = config.max_images
    for path in files:
        if path.stat().st_size % per_image:
            raise DataError(f"{path}: size is not a whole number of 96x96x3 images (truncated?)")
        raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, *STL10_SHAPE)
        if remaining is not None:
            raw, remaining = raw[:remaining], remaining - len(raw[:remaining])
        # Resize in chunks: the unlabeled file alone is 2.7 GB.
        for start in range(0, len(raw), 4096):
            chunk = np.asarray(raw[start : start + 4096]).transpose(0, 3, 2, 1)
            parts.append(resize_array(chunk, config.image_size, config.channels))
        if remaining == 0:
            break
    return np.concatenate(parts)
