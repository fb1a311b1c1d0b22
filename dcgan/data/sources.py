"""Data sources -> one uint8 array (N, height, width, channels), decoded once into memory.

numpy and PIL only: every source is read from files in its real published format, so the
readers are tested against small files that the tests write. Sources that must be
downloaded are looked for in Keras' cache first; only a missing copy triggers a download,
and with no network the error says which file to put where.
Every file is opened through safe_files (regular files only, each within a bound), sizes
are checked before anything is inflated, and a pickle may build numpy arrays and nothing else.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image, ImageOps, UnidentifiedImageError

from dcgan.config import DataConfig, image_size_text
from dcgan.errors import DataError, printable, shorten
from dcgan.files.reading import GiB, MiB, UnsafeFile, check_zip, open_regular, read_bytes, size_text

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
BACKGROUND = (255, 255, 255)  # transparent pixels become white, as on a product photo
# Fewer images end a run in a traceback: the diversity metric needs 2, KID two subsets of 2,
# precision/recall (k=3) 4.
MIN_IMAGES = 4


def load_images(config: DataConfig) -> np.ndarray:
    """All training images of the configured source, as uint8 (N, height, width, channels)."""
    return load_labelled(config)[0]


def load_labelled(config: DataConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The training images and, when config.classes is set (a conditional run), each
    image's class: int32 (N,) indices into config.classes; None otherwise."""
    if config.classes is not None:
        images, labels = _LABELLED_LOADERS[config.source](config)
    else:
        images, labels = _LOADERS[config.source](config), None
    if len(images) == 0:
        raise DataError(f"{_where(config)}: no images found")
    if len(images) < MIN_IMAGES:
        raise _too_few(config, len(images))
    if config.xflip:  # the mirror images after the originals, each with its class
        images = np.concatenate([images, images[:, :, ::-1]])
        labels = None if labels is None else np.concatenate([labels, labels])
    return images, labels


def _where(config: DataConfig) -> str:
    where = f"data.source {config.source}"
    if config.path is not None:
        where += f", data.path {printable(config.path)}"
    return where


def _too_few(config: DataConfig, count: int, detail: str = "") -> DataError:
    limited = config.max_images is not None and config.max_images < MIN_IMAGES
    hint = f" (data.max_images is {config.max_images})" if limited else ""
    return DataError(
        f"{_where(config)}: only {count} usable image{'s' if count > 1 else ''}{hint}{detail}; "
        f"a GAN run needs at least {MIN_IMAGES} (its evaluation compares sets of {MIN_IMAGES}) "
        "and thousands to learn anything"
    )


def _present(path: Path) -> bool:
    """Something other than a folder is at path: a file to read, or a FIFO or device that
    open_regular will refuse by name rather than pass over in silence."""
    return path.exists() and not path.is_dir()


def _data_error(exc: UnsafeFile, prefix: str = "") -> DataError:
    return DataError(prefix + printable(str(exc)))


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


def fit_image(image: Image.Image, shape: tuple[int, int], resize: str) -> Image.Image:
    """image resized to shape (height, width): "crop" takes the largest centred part of the
    target's aspect; "pad" shrinks the whole image into it and fills the sides with the
    colour of the image's border, so nothing is cut off and no band stands out."""
    height, width = shape
    if image.size == (width, height):
        return image
    if resize == "crop":
        return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
    scale = min(width / image.width, height / image.height)
    inner = (
        max(1, min(width, round(image.width * scale))),
        max(1, min(height, round(image.height * scale))),
    )
    canvas = Image.new(image.mode, (width, height), border_colour(image))
    resized = image.resize(inner, Image.Resampling.LANCZOS)
    canvas.paste(resized, ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def border_colour(image: Image.Image) -> int | tuple[int, ...]:
    """The median colour of the image's outermost ring of pixels (the ground of an object
    photographed on a plain background); read as four strips, never the whole image."""
    width, height = image.size
    strips = [(0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height)]
    strips.append((width - 1, 0, width, height))
    ring = np.concatenate(
        [np.asarray(image.crop(box)).reshape(-1, len(image.getbands())) for box in strips]
    )
    median = np.median(ring, axis=0).round().astype(int)
    return int(median[0]) if len(median) == 1 else tuple(int(v) for v in median)


def upscale_needed(image_size: tuple[int, int], shape: tuple[int, int], resize: str) -> float:
    """How many times image_size (width, height) is stretched to reach shape (h, w)."""
    scales = (shape[1] / image_size[0], shape[0] / image_size[1])
    return max(scales) if resize == "crop" else min(scales)


def _as_array(image: Image.Image, channels: int) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def resize_array(images: np.ndarray, config: DataConfig) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> (N, height, width, channels) of the config."""
    if images.ndim == 3:
        images = images[..., None]
    target = (*config.shape, config.channels)
    if images.shape[1:] == target:
        return np.ascontiguousarray(images)
    out = np.empty((len(images), *target), dtype=np.uint8)
    for i, pixels in enumerate(images):
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        fitted = fit_image(to_mode(image, config.channels), config.shape, config.resize)
        out[i] = _as_array(fitted, config.channels)
    return out


def _limit(images: np.ndarray, config: DataConfig) -> np.ndarray:
    return images[: config.max_images] if config.max_images else images


# --- folder -------------------------------------------------------------------------------


MAX_FOLDER_DEPTH = 64  # levels of folders below data.path; no photo collection nests deeper
MAX_IMAGE_FILE = 256 * MiB  # one image file; a 100-megapixel PNG is well under it


def list_image_files(folder: Path) -> list[Path]:
    """The image files in folder and below, sorted. Walked with a stack, not recursion;
    symbolic links to folders are not entered (a link to a parent would never end); a
    folder nested more than MAX_FOLDER_DEPTH levels down is an error, not a silent skip.
    Anything with an image suffix that is not a folder is listed: a FIFO or a dangling
    link named like an image is skipped later with its reason, so the user hears of it."""
    found = []
    pending = [(folder, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            with os.scandir(current) as scan:
                entries = list(scan)
        except OSError as exc:
            if depth == 0:
                raise DataError(
                    f"data.path {printable(folder)}: cannot list this folder: {exc.strerror or exc}"
                ) from None
            continue  # an unreadable subfolder is passed over, as a folder walk does
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth == MAX_FOLDER_DEPTH:
                    below = shorten(printable(Path(entry.path).relative_to(folder)), 60)
                    raise DataError(
                        f"data.path {printable(folder)}: folders nest deeper than the "
                        f"{MAX_FOLDER_DEPTH} levels dcgan reads (at {below}); move the "
                        "images up or point data.path at a folder nearer to them"
                    )
                pending.append((Path(entry.path), depth + 1))
            elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and not entry.is_dir():
                found.append(Path(entry.path))
    return sorted(found)


MAX_UPSCALE = 8  # a smaller image (a 1x1 pixel, an icon for a 128 run) is not training data


def decode_image(path: Path, config: DataConfig) -> np.ndarray | str:
    """The image as an array, or the reason it could not be used."""
    try:
        with (
            open_regular(path, MAX_IMAGE_FILE, "picture file") as stream,
            Image.open(stream) as image,
        ):
            if upscale_needed(image.size, config.shape, config.resize) > MAX_UPSCALE:
                return (
                    f"too small: {image.width}x{image.height} would be stretched over "
                    f"{MAX_UPSCALE}x to reach data.image_size {image_size_text(config.image_size)}"
                )
            image.load()
            fitted = fit_image(to_mode(image, config.channels), config.shape, config.resize)
            return _as_array(fitted, config.channels)
    except UnsafeFile as exc:
        return str(exc).removeprefix(f"{path}: ")
    except UnidentifiedImageError:  # its message names the stream, not the file
        return "UnidentifiedImageError: not an image format Pillow reads"
    except Exception as exc:  # a crafted file can fail inside any Pillow plugin in any way
        return f"{type(exc).__name__}: {shorten(printable(str(exc)))}"


def _load_folder(config: DataConfig) -> np.ndarray:
    folder = config.path
    files = list_image_files(folder)
    if not files:
        raise _no_image_files(folder)
    if config.max_images:
        files = files[: config.max_images]
    images, _ = _decode_files(files, config)
    return images


def _no_image_files(folder: Path) -> DataError:
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    return DataError(
        f"data.path {printable(folder)}: no image files ({suffixes}) in this folder or below"
    )


def _load_labelled_folder(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Class i's images are those in (and below) the sub-folder config.classes[i]. With
    data.max_images, the classes take turns, so each keeps its share."""
    per_class = [list_image_files(config.path / name) for name in config.classes]
    for name, files in zip(config.classes, per_class, strict=True):
        if not files:
            raise _class_error(config, name, _no_image_files(config.path / name))
    turns = sorted(
        (rank, label, path)
        for label, files in enumerate(per_class)
        for rank, path in enumerate(files)
    )
    if config.max_images:
        turns = turns[: config.max_images]
    files = [path for _, _, path in turns]
    images, reasons = _decode_files(files, config)
    labels = np.array([t[1] for t, why in zip(turns, reasons, strict=True) if why is None])
    for label, name in enumerate(config.classes):
        if not (labels == label).any():
            tried = [(t[2], why) for t, why in zip(turns, reasons, strict=True) if t[1] == label]
            path, why = tried[0]
            raise _class_error(
                config,
                name,
                DataError(
                    f": none of its {len(tried)} image files can be used (first: "
                    f"{printable(path.name)}: {why})"
                ),
            )
    return images, labels.astype(np.int32)


def _class_error(config: DataConfig, name: str, error: DataError) -> DataError:
    return DataError(
        f"data.path {printable(config.path)}, class '{shorten(printable(name), 60)}': "
        + str(error).split(": ", 1)[-1]
    )


def _decode_files(files: list[Path], config: DataConfig) -> tuple[np.ndarray, list[str | None]]:
    """The usable images of files, stacked, and for each file why it could not be used
    (None for those that could)."""
    folder = config.path
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        decoded = list(pool.map(lambda p: decode_image(p, config), files))
    images = [d for d in decoded if isinstance(d, np.ndarray)]
    failures = [(p, d) for p, d in zip(files, decoded, strict=True) if isinstance(d, str)]
    # A refusal says all in its one line; the skipped files are logged only when training goes on.
    if not images:
        path, reason = failures[0]
        raise DataError(
            f"data.path {printable(folder)}: none of the {len(files)} image files can be used "
            f"(first: {printable(path.name)}: {reason})"
        )
    if len(images) < MIN_IMAGES:
        detail = ""
        if failures:
            path, reason = failures[0]
            detail = f" of {len(files)} (first unusable: {printable(path.name)}: {reason})"
        raise _too_few(config, len(images), detail)
    if failures:
        path, reason = failures[0]
        log.warning(
            "skipped %d unreadable or too small file(s) of %d in %s (first: %s: %s)",
            len(failures),
            len(files),
            printable(folder),
            printable(path),
            reason,
        )
    log.info("read %d images from %s", len(images), printable(folder))
    return np.stack(images), [d if isinstance(d, str) else None for d in decoded]


# --- embedded and downloadable data sets ---------------------------------------------------


def _load_digits(config: DataConfig) -> np.ndarray:
    return _load_labelled_digits(config)[0]


def _load_labelled_digits(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    # 8x8 pixels of 0..16 ink, shipped inside scikit-learn: nothing to download.
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int32)
    return resize_array(_limit(images, config), config), _limit(labels, config)


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


# The bounds a downloaded data set must keep, far above the real files: MNIST's x_train is
# 47 MB, Fashion-MNIST's images 47 MB inflated, CIFAR-10 a 31 MB pickle per batch in a tar
# of 178 MB. Each is checked before the bytes are inflated or read.
MAX_ARRAY_BYTES = 1 * GiB
MAX_SIDE = 1024  # rows or columns of one MNIST-family image
MAX_CIFAR_BATCH = 128 * MiB
MAX_CIFAR_TAR = 1 * GiB  # inflated, up to the end of the last batch read


def _read_up_to(stream: BinaryIO, count: int, chunk: int = 16 * MiB) -> bytearray:
    """At most count bytes of stream, read in chunks: a header that claims a gigabyte
    the file lacks does not get a gigabyte allocated up front."""
    data = bytearray()
    while len(data) < count:
        part = stream.read(min(chunk, count - len(data)))
        if not part:
            break
        data += part
    return data


def _load_mnist(config: DataConfig) -> np.ndarray:
    return resize_array(_limit(read_npz_images(_mnist_file(config)), config), config)


def _load_labelled_mnist(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    path = _mnist_file(config)
    images, labels = read_npz_images(path), read_npz_images(path, "y_train")
    _check_labels(f"data.source mnist: {printable(path)}", labels, len(images), 10)
    return resize_array(_limit(images, config), config), _limit(labels, config)


def _mnist_file(config: DataConfig) -> Path:
    candidates = [keras_cache_dir() / "mnist.npz"]
    if config.path is not None:
        candidates[:0] = [config.path, config.path / "mnist.npz"]
    path = _first_existing(p for p in candidates if _present(p))
    if path is None:
        expected = f"mnist.npz (x_train, y_train, x_test, y_test) at {candidates[-1]}"
        _download("mnist", "mnist", expected)
        path = candidates[-1]
    return path


def _check_labels(where: str, labels: np.ndarray, count: int, classes: int) -> np.ndarray:
    """Labels as int32: one per image, each a class index."""
    if labels.shape != (count,):
        raise DataError(f"{where}: {labels.shape[0]} labels for {count} images")
    if len(labels) and int(labels.max()) >= classes:
        raise DataError(f"{where}: label {int(labels.max())} is not one of the {classes} classes")
    return labels.astype(np.int32)


def read_npz_images(path: Path, key: str = "x_train") -> np.ndarray:
    """uint8 (N, rows, cols) from an .npz archive such as mnist.npz, or with key "y_train"
    its uint8 labels (N,): the archive's sizes and the array's header are checked before
    its values are inflated; nothing is unpickled."""
    rank = 1 if key.startswith("y_") else 3
    where = f"data.source mnist: {printable(path)}"
    try:
        names = check_zip(path, MAX_ARRAY_BYTES * 2, MAX_ARRAY_BYTES + MiB)
    except UnsafeFile as exc:
        raise _data_error(exc, "data.source mnist: ") from None
    if f"{key}.npy" not in names:
        held = ", ".join(shorten(printable(name), 30) for name in names[:6]) or "nothing"
        raise DataError(f"{where}: is not a mnist.npz: it has no {key} array (it holds {held})")
    try:
        with (
            open_regular(path, what="mnist.npz") as raw,
            zipfile.ZipFile(raw) as archive,
            archive.open(f"{key}.npy") as member,
        ):
            version = npy_format.read_magic(member)
            if version == (1, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_2_0(member)
            else:
                raise ValueError(f".npy format version {version} is not one numpy writes for uint8")
            if dtype != np.uint8 or len(shape) != rank:
                what = "labels (N,)" if rank == 1 else "images (N, rows, cols)"
                raise DataError(
                    f"{where}: its {key} is a {dtype} array of shape {shorten(str(shape))}, "
                    f"not uint8 {what}"
                )
            count, rows, cols = shape if rank == 3 else (*shape, 1, 1)
            _check_array_size(where, count, rows, cols)
            pixels = _read_up_to(member, count * rows * cols)
    except UnsafeFile as exc:
        raise _data_error(exc, "data.source mnist: ") from None
    except DataError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy's header parser fail in many ways
        raise DataError(
            f"{where}: is not a readable mnist.npz: {type(exc).__name__}: "
            f"{shorten(printable(str(exc)))}"
        ) from None
    if len(pixels) != count * rows * cols:
        raise DataError(
            f"{where}: its {key} is truncated: header says {count} images of {rows}x{cols}"
        )
    return np.frombuffer(pixels, np.uint8).reshape(shape, order="F" if fortran_order else "C")


def _check_array_size(where: str, count: int, rows: int, cols: int) -> None:
    """Before anything is allocated: the sizes a header declares stay within the bounds."""
    total = count * rows * cols
    if min(count, rows, cols) < 0:
        raise DataError(f"{where}: header declares {count} images of {rows}x{cols}")
    if rows > MAX_SIDE or cols > MAX_SIDE or total > MAX_ARRAY_BYTES:
        raise DataError(
            f"{where}: header declares {count:,} images of {rows}x{cols} "
            f"({size_text(total)}), over the {MAX_SIDE}x{MAX_SIDE} pixels and "
            f"{size_text(MAX_ARRAY_BYTES)} in all that dcgan reads"
        )


IDX_IMAGES, IDX_LABELS = 2051, 2049  # the magic numbers of IDX3 (images) and IDX1 (labels)


def read_idx_images(path: Path) -> np.ndarray:
    """A gzipped IDX3 file (the MNIST family's format) as uint8 (N, rows, cols), or an IDX1
    label file as uint8 (N,). The header is read first and its sizes checked; then exactly
    the values it declares are inflated, and one byte more: data after them is an error (a
    wrong header, or files joined)."""
    where = printable(path)
    try:
        with (
            open_regular(path, MAX_ARRAY_BYTES, "gzipped IDX file") as raw,
            gzip.GzipFile(fileobj=raw, mode="rb") as stream,
        ):
            magic = int.from_bytes(stream.read(4), "big")
            if magic not in (IDX_IMAGES, IDX_LABELS):
                raise DataError(f"{where}: not an IDX file (magic number 2051 or 2049 missing)")
            sizes = 1 if magic == IDX_LABELS else 3
            header = stream.read(4 * sizes)
            if len(header) < 4 * sizes:
                raise DataError(f"{where}: truncated IDX header")
            count, rows, cols = (
                *(int.from_bytes(header[i : i + 4], "big") for i in range(0, 4 * sizes, 4)),
                *([1, 1] if magic == IDX_LABELS else []),
            )
            _check_array_size(where, count, rows, cols)
            pixels = _read_up_to(stream, count * rows * cols)
            if len(pixels) != count * rows * cols:
                raise DataError(f"{where}: truncated: header says {count} images of {rows}x{cols}")
            if stream.read(1):
                raise DataError(
                    f"{where}: has data after the {count} images of {rows}x{cols} its header "
                    "declares (a wrong header, or two files joined?)"
                )
    except UnsafeFile as exc:
        raise _data_error(exc) from None
    except DataError:
        raise
    except Exception as exc:  # gzip, zlib: OSError, EOFError, zlib.error
        raise DataError(
            f"{where}: not a readable gzip file: {shorten(printable(str(exc)))}"
        ) from None
    shape = (count,) if magic == IDX_LABELS else (count, rows, cols)
    return np.frombuffer(pixels, np.uint8).reshape(shape)


FASHION_IMAGES, FASHION_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"


def _load_fashion_mnist(config: DataConfig) -> np.ndarray:
    images = read_idx_images(_fashion_folder(config) / FASHION_IMAGES)
    return resize_array(_limit(images, config), config)


def _load_labelled_fashion_mnist(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    folder = _fashion_folder(config)
    images = read_idx_images(folder / FASHION_IMAGES)
    path = folder / FASHION_LABELS
    if not _present(path):
        raise DataError(
            f"data.source fashion_mnist: {printable(path)} is missing: a conditional run "
            f"needs the labels beside {FASHION_IMAGES}"
        )
    labels = _check_labels(printable(path), read_idx_images(path), len(images), 10)
    return resize_array(_limit(images, config), config), _limit(labels, config)


def _fashion_folder(config: DataConfig) -> Path:
    folders = [keras_cache_dir() / "fashion-mnist"]
    if config.path is not None:
        folders.insert(0, config.path)
    folder = _first_existing(f for f in folders if _present(f / FASHION_IMAGES))
    if folder is None:
        _download("fashion_mnist", "fashion_mnist", f"{FASHION_IMAGES} in {folders[-1]}")
        folder = folders[-1]
    return folder


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_ROW = 3 * 32 * 32


def _cifar_folder_candidates(config: DataConfig) -> list[Path]:
    cache = keras_cache_dir()
    roots = [cache, cache / "cifar-10-batches-py-target", cache / "cifar-10-batches-py_extracted"]
    if config.path is not None:
        roots.insert(0, config.path)
    return [folder for root in roots for folder in (root, root / "cifar-10-batches-py")]


class _ForbiddenGlobal(Exception):
    pass


def _latin1_bytes(text: object, encoding: object) -> bytes:
    if isinstance(text, str) and encoding == "latin1":
        return text.encode("latin1")
    raise _ForbiddenGlobal("_codecs.encode with other than (text, 'latin1')")


class _NdarrayClass:
    """What the file gets for numpy.ndarray: usable only as _reconstruct's first argument.
    Called directly, ndarray(shape, dtype) would allocate any size the file asks for;
    through _reconstruct an array starts empty and is filled from the file's own bytes."""

    def __new__(cls, *args, **kwargs):
        raise _ForbiddenGlobal("numpy.ndarray called directly (it would allocate any size)")


_NUMPY_RECONSTRUCT = np.empty(0).__reduce__()[0]


def _reconstruct(cls: object, shape: object, dtype: object) -> np.ndarray:
    if cls is not _NdarrayClass or shape != (0,):
        raise _ForbiddenGlobal("numpy's _reconstruct with other than (ndarray, (0,), ...)")
    return _NUMPY_RECONSTRUCT(np.ndarray, shape, dtype)


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers and nothing else: a
    pickle names the functions it calls, and only numpy's own array reconstruction is a
    function a CIFAR-10 batch names. Any other (os.system, builtins.eval) is refused
    before it is looked up, so nothing in the file runs."""

    # numpy's own functions, taken from an array rather than imported by the names a file
    # gives: numpy 1 calls its module numpy.core, numpy 2 numpy._core.
    # Protocol 5 (Python 3.14's default) stores a contiguous array as its buffer, rebuilt
    # by numpy's _frombuffer (np.frombuffer, then reshape): no more able to run code.
    _frombuffer = np.empty(1).__reduce_ex__(5)[0]
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): _NdarrayClass,
        ("numpy", "dtype"): np.dtype,
        # The published batches are Python 2 pickles, whose byte strings need no function.
        # Python 3 writes bytes under protocol 2 (no bytes opcode before protocol 3) as
        # _codecs.encode(text, "latin1"), so a batch re-saved that way needs it: only that
        # exact call is admitted.
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"{module}.{name}") from None


def _read_cifar_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch's images (N, 32, 32, 3) and its labels (None when it has no valid ones)."""
    prefix = f"data.source cifar10: {where}"
    try:
        batch = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _ForbiddenGlobal as exc:
        raise DataError(
            f"{prefix}: refuses to load {shorten(printable(str(exc)))}: a CIFAR-10 batch holds "
            "numpy arrays only, so this pickle is not one (it may be built to run code)"
        ) from None
    except Exception as exc:  # a corrupt pickle can fail in many ways
        raise DataError(
            f"{prefix}: is not a CIFAR-10 batch: {type(exc).__name__}: "
            f"{shorten(printable(str(exc)))}"
        ) from None
    rows = batch.get(b"data") if isinstance(batch, dict) else None
    if not (
        isinstance(rows, np.ndarray)
        and rows.dtype == np.uint8
        and rows.ndim == 2
        and rows.shape[1] == CIFAR_ROW
    ):
        if isinstance(rows, np.ndarray):
            found = f"its b'data' is a {rows.dtype} array of shape {shorten(str(rows.shape))}"
        elif isinstance(batch, dict):
            found = f"its b'data' is {type(rows).__name__}"
        else:
            found = f"it holds a {type(batch).__name__}, not a dict"
        raise DataError(
            f"{prefix}: is not a CIFAR-10 batch: {found}, not uint8 rows of {CIFAR_ROW} "
            "values (3x32x32)"
        )
    labels = batch.get(b"labels")
    valid = (
        isinstance(labels, list)
        and len(labels) == len(rows)
        and all(type(label) is int and 0 <= label < 10 for label in labels)
    )
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.array(labels, np.int32) if valid else None


def _load_cifar10(config: DataConfig) -> np.ndarray:
    images, _ = _read_cifar10(config)
    return resize_array(_limit(images, config), config)


def _load_labelled_cifar10(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _read_cifar10(config)
    if labels is None:
        raise DataError(
            "data.source cifar10: its batches have no valid b'labels' (a list of 0..9 per "
            "image), which a conditional run needs"
        )
    return resize_array(_limit(images, config), config), _limit(labels, config)


def _read_cifar10(config: DataConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The five training batches' images and labels (None unless every batch has them)."""
    if config.path is not None and _present(config.path):
        parts = _read_cifar_archive(config.path)
    else:
        candidates = _cifar_folder_candidates(config)
        folder = _first_existing(f for f in candidates if _present(f / CIFAR_BATCHES[0]))
        if folder is None:
            expected = (
                "cifar-10-python.tar.gz, extracted so that "
                f"{keras_cache_dir() / 'cifar-10-batches-py' / 'data_batch_1'} exists "
                "(or set data.path to the archive)"
            )
            _download("cifar10", "cifar10", expected)
            folder = _first_existing(f for f in candidates if _present(f / CIFAR_BATCHES[0]))
            if folder is None:
                raise DataError("data.source cifar10: downloaded, but no data_batch_1 was found")
        parts = []
        for name in CIFAR_BATCHES:
            path = folder / name
            if not _present(path):
                raise DataError(f"data.source cifar10: {printable(path)} is missing")
            try:
                data = read_bytes(path, MAX_CIFAR_BATCH, "CIFAR-10 batch")
            except UnsafeFile as exc:
                raise _data_error(exc, "data.source cifar10: ") from None
            parts.append(_read_cifar_batch(data, printable(path)))
    images = np.concatenate([images for images, _ in parts])
    if any(labels is None for _, labels in parts):
        return images, None
    return images, np.concatenate([labels for _, labels in parts])


def _tar_kind(member: tarfile.TarInfo) -> str:
    kinds = (
        (member.issym, "a symbolic link"),
        (member.islnk, "a hard link"),
        (member.isdir, "a folder"),
        (member.isfifo, "a FIFO"),
        (member.isdev, "a device"),
    )
    return next((name for test, name in kinds if test()), "not a regular file")


def _read_cifar_archive(path: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The five batches of cifar-10-python.tar.gz, read as the archive is walked: no member
    is extracted to disk, none but a regular file is read, and inflating stops at
    MAX_CIFAR_TAR."""
    where = f"data.path {printable(path)}"
    batches: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    try:
        with (
            open_regular(path, what="CIFAR-10 archive") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as archive,
        ):
            for member in archive:
                if member.offset_data + member.size > MAX_CIFAR_TAR:
                    raise DataError(
                        f"{where}: inflates past {size_text(MAX_CIFAR_TAR)} before its "
                        f"{len(CIFAR_BATCHES)} batches are read (the real archive is 178 MB)"
                    )
                name = Path(member.name).name
                if name not in CIFAR_BATCHES or name in batches:
                    continue
                shown = f"{where}:{shorten(printable(member.name))}"
                if not member.isfile():
                    raise DataError(f"{shown}: is {_tar_kind(member)}, not a CIFAR-10 batch")
                if member.size > MAX_CIFAR_BATCH:
                    raise DataError(
                        f"{shown}: is {size_text(member.size)}, over the "
                        f"{size_text(MAX_CIFAR_BATCH)} a CIFAR-10 batch may have"
                    )
                data = archive.extractfile(member).read(member.size)
                batches[name] = _read_cifar_batch(data, shown.removeprefix("data.path "))
                if len(batches) == len(CIFAR_BATCHES):
                    break
    except UnsafeFile as exc:
        raise _data_error(exc, "data.path ") from None
    except DataError:
        raise
    except Exception as exc:  # tarfile, gzip, bz2, lzma, zlib each have their own errors
        raise DataError(
            f"{where}: not a readable CIFAR-10 archive: {type(exc).__name__}: "
            f"{shorten(printable(str(exc)))}"
        ) from None
    missing = [name for name in CIFAR_BATCHES if name not in batches]
    if missing:
        raise DataError(f"{where}: archive lacks {', '.join(missing)}")
    return [batches[name] for name in CIFAR_BATCHES]


STL10_FILES = ("train_X.bin", "unlabeled_X.bin")
STL10_SHAPE = (3, 96, 96)


def _load_stl10(config: DataConfig) -> np.ndarray:
    """STL-10's binary files: uint8, each image channel-major and column-major."""
    folder = _stl10_folder(config)
    files = [folder / name for name in STL10_FILES if _present(folder / name)]
    if not files:
        raise DataError(
            f"data.path {printable(config.path)}: no STL-10 binary files; place "
            f"{' and/or '.join(STL10_FILES)} from stl10_binary.tar.gz in this folder"
        )
    parts = []
    remaining = config.max_images
    for path in files:
        images = _read_stl10_images(path, config, remaining)
        parts.append(images)
        if remaining is not None:
            remaining -= len(images)
            if remaining == 0:
                break
    return np.concatenate(parts)


def _load_labelled_stl10(config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """train_X.bin with its labels, train_y.bin (1..10, one byte per image); the unlabelled
    split has none to give."""
    folder = _stl10_folder(config)
    images_path, labels_path = folder / "train_X.bin", folder / "train_y.bin"
    if not (_present(images_path) and _present(labels_path)):
        unlabelled = _present(folder / "unlabeled_X.bin")
        raise DataError(
            f"data.path {printable(config.path)}: a conditional run (model.conditional) needs "
            "STL-10's labelled split, train_X.bin and train_y.bin"
            + (": unlabeled_X.bin has no labels" if unlabelled else "")
        )
    images = _read_stl10_images(images_path, config, config.max_images)
    try:
        raw = read_bytes(labels_path, 10 * MiB, "STL-10 label file")
    except UnsafeFile as exc:
        raise _data_error(exc) from None
    labels = np.frombuffer(raw, np.uint8).astype(np.int32) - 1  # the file counts from 1
    where = printable(labels_path)
    if len(labels) < len(images) or (len(labels) and labels.min() < 0):
        raise DataError(f"{where}: not {len(images)} labels from 1 to 10")
    return images, _check_labels(where, labels[: len(images)], len(images), 10)


def _stl10_folder(config: DataConfig) -> Path:
    folder = config.path
    return folder / "stl10_binary" if (folder / "stl10_binary").is_dir() else folder


def _read_stl10_images(path: Path, config: DataConfig, limit: int | None) -> np.ndarray:
    """The images of one STL-10 binary file (the first limit of them), resized."""
    per_image = int(np.prod(STL10_SHAPE))
    try:
        with open_regular(path, what="STL-10 binary file") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size == 0 or size % per_image:
                raise DataError(
                    f"{printable(path)}: size {size:,} bytes is not a whole number of "
                    "96x96x3 images (truncated?)"
                )
            raw = np.memmap(stream, dtype=np.uint8, mode="r").reshape(-1, *STL10_SHAPE)
    except UnsafeFile as exc:
        raise _data_error(exc) from None
    if limit is not None:
        raw = raw[:limit]
    # Resize in chunks: the unlabeled file alone is 2.7 GB.
    parts = [
        resize_array(np.asarray(raw[start : start + 4096]).transpose(0, 3, 2, 1), config)
        for start in range(0, len(raw), 4096)
    ]
    return np.concatenate(parts)


_LOADERS: dict[str, Callable[[DataConfig], np.ndarray]] = {
    "folder": _load_folder,
    "digits": _load_digits,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
    "stl10": _load_stl10,
}
_LABELLED_LOADERS: dict[str, Callable[[DataConfig], tuple[np.ndarray, np.ndarray]]] = {
    "folder": _load_labelled_folder,
    "digits": _load_labelled_digits,
    "mnist": _load_labelled_mnist,
    "fashion_mnist": _load_labelled_fashion_mnist,
    "cifar10": _load_labelled_cifar10,
    "stl10": _load_labelled_stl10,
}
