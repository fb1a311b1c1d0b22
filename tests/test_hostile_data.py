"""Hostile data sets: nothing in a data file runs, nothing inflates past its bound, no FIFO or
device is read, no walk recurses without end, and each refusal is one line.

Every case fails on the readers before the issue: code ran, a gigabyte was read, a message
was misleading or spread over lines, or the run ended in a traceback. Cases with a FIFO run
under an alarm that fails them if the reader blocks.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import signal
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_pixels, run_dirs, save_image, tiny_config, write_config
from numpy.lib import format as npy_format

from dcgan.cli import main
from dcgan.config import DataConfig
from dcgan.errors import DataError

MiB, GiB = 2**20, 2**30


# --- helpers --------------------------------------------------------------------------------


class Blocked(BaseException):
    """Raised by the alarm: not an Exception, so neither the CLI nor CliRunner catches it."""


def guarded(call, *fifos: Path, seconds: int = 120):
    """call(), failed by an alarm if it blocks (on a FIFO) instead of hanging the suite: the
    alarm interrupts the blocking open or read. The CLI itself wants the main thread."""

    def expire(signum, frame):
        raise Blocked

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        return call()
    except Blocked:
        pytest.fail(f"blocked for {seconds} s reading {', '.join(map(str, fifos))}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def train(tmp_path: Path, data: dict, *fifos: Path, **sections):
    config = tiny_config(tmp_path, data=data, train={"steps": 2}, **sections)
    args = ["train", "--config", str(write_config(tmp_path, config))]
    return guarded(lambda: CliRunner().invoke(main, args), *fifos)


def one_line(result, tmp_path: Path, *fragments: str, exit_code: int = 2) -> str:
    """The refusal is exit_code, one line holding every fragment, and no run folder."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # a failed start leaves no run
    return lines[0]


def load(source: str, path: Path, size: int = 16, channels: int = 1, *fifos: Path) -> np.ndarray:
    from dcgan.data.sources import load_images

    config = DataConfig(source=source, path=path, image_size=size, channels=channels)
    return guarded(lambda: load_images(config), *fifos)


def cifar_rows(seed: int) -> np.ndarray:
    images = random_pixels((4, 32, 32, 3), seed=seed)
    return images.transpose(0, 3, 1, 2).reshape(4, 3072)


def cifar_batch(seed: int, protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps({b"data": cifar_rows(seed), b"labels": [0, 1, 2, 3]}, protocol=protocol)


def cifar_folder(tmp_path: Path, first: bytes | None = None) -> Path:
    """cifar-10-batches-py with five batches; data_batch_1 is `first` when given."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(
            cifar_batch(i) if i > 1 or first is None else first
        )
    return folder


def cifar_data(path: Path) -> dict:
    return {"source": "cifar10", "path": str(path), "image_size": 16, "channels": 3}


class RunsCommand:
    """Pickled, a call of os.system that touches the marker file when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def evil_batch(marker: Path) -> bytes:
    return pickle.dumps({b"data": RunsCommand(marker), b"labels": [0]})


def tar_of(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def batch_member(i: int, data: bytes | None = None) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}"), data or cifar_batch(i)


def idx_header(count: int, rows: int, cols: int) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (2051, count, rows, cols))


def npy_bytes(header: dict, data: bytes) -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def mnist_npz(path: Path, x_train_npy: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x_train.npy", x_train_npy)
        archive.writestr(
            "y_train.npy",
            npy_bytes({"descr": "|u1", "fortran_order": False, "shape": (2,)}, b"\0\1"),
        )
    return path


# --- 1. pickles: nothing in a CIFAR-10 batch runs ---------------------------------------------


def test_cifar_pickle_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    folder = cifar_folder(tmp_path, evil_batch(marker))
    result = train(tmp_path, cifar_data(folder))
    one_line(
        result,
        tmp_path,
        f"data.source cifar10: {folder / 'data_batch_1'}: refuses to load posix.system",
        "is not one (it may be built to run code)",
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name", "argument"),
    [
        ("builtins", "exec", "open({marker!r}, 'w').close()"),
        ("builtins", "eval", "open({marker!r}, 'w').close()"),
        ("subprocess", "getoutput", "touch {marker}"),
    ],
)
def test_cifar_pickle_naming_other_globals_is_refused(tmp_path, module, name, argument):
    marker = tmp_path / "code-ran"
    text = argument.format(marker=str(marker))
    # Protocol 0 by hand: push module.name, call it with one string argument.
    crafted = f"c{module}\n{name}\n(V{text}\ntR.".encode()
    folder = cifar_folder(tmp_path, crafted)
    with pytest.raises(DataError, match=rf"data_batch_1: refuses to load {module}\.{name}: "):
        load("cifar10", folder, channels=3)
    assert not marker.exists()


class _Uninitialised:
    """Pickles as a direct call of numpy.ndarray: (300,000, 3072) bytes from 60 in the file."""

    def __reduce__(self):
        return (np.ndarray, ((300_000, 3072), "u1"))


def test_cifar_pickle_that_allocates_an_array_it_does_not_hold_is_refused(tmp_path):
    crafted = pickle.dumps({b"data": _Uninitialised(), b"labels": [0]}, protocol=2)
    assert len(crafted) < 200
    folder = cifar_folder(tmp_path, crafted)
    with pytest.raises(DataError, match=r"batch_1: refuses to load numpy.ndarray called directly"):
        load("cifar10", folder, channels=3)


def test_cifar_pickle_in_the_tar_archive_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    archive = tar_of(
        tmp_path / "cifar-10-python.tar.gz",
        [batch_member(1, evil_batch(marker))] + [batch_member(i) for i in range(2, 6)],
    )
    result = train(tmp_path, cifar_data(archive))
    one_line(
        result,
        tmp_path,
        f"{archive}:cifar-10-batches-py/data_batch_1: refuses to load posix.system",
    )
    assert not marker.exists()


def test_cifar_batches_of_every_protocol_load_and_only_latin1_codecs_pass(tmp_path):
    from dcgan.data.sources import load_images

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = []
    # Protocols 0 and 2 store bytes as _codecs.encode(text, "latin1"), 5 arrays as buffers.
    for i, protocol in enumerate([0, 2, 3, 4, 5], start=1):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch(i, protocol))
        expected.append(cifar_rows(i).reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))
    config = DataConfig(source="cifar10", path=folder, image_size=32, channels=3)
    np.testing.assert_array_equal(load_images(config), np.concatenate(expected))

    (folder / "data_batch_1").write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataError, match=r"refuses to load _codecs\.encode with other than"):
        load_images(config)


@pytest.mark.parametrize(
    ("batch", "found"),
    [
        ({b"data": cifar_rows(1)[:, :3000]}, "its b'data' is a uint8 array of shape (4, 3000)"),
        ({b"data": cifar_rows(1).astype(np.float64)}, "is a float64 array of shape (4, 3072)"),
        ({b"data": [bytes(3072)] * 4}, "its b'data' is list"),
        ([cifar_rows(1)], "it holds a list, not a dict"),
    ],
    ids=["short rows", "float rows", "list of bytes", "not a dict"],
)
def test_cifar_batch_of_the_wrong_structure_is_one_line(tmp_path, batch, found):
    folder = cifar_folder(tmp_path, pickle.dumps(batch))
    result = train(tmp_path, cifar_data(folder))
    one_line(
        result,
        tmp_path,
        "data_batch_1: is not a CIFAR-10 batch: ",
        found,
        "not uint8 rows of 3072 values (3x32x32)",
    )


def test_cifar_batch_over_the_size_bound_is_not_read(tmp_path):
    folder = cifar_folder(tmp_path)
    os.truncate(folder / "data_batch_1", 200 * MiB)  # sparse: nothing is written
    result = train(tmp_path, cifar_data(folder))
    one_line(
        result,
        tmp_path,
        f"{folder / 'data_batch_1'}: is 200.0 MiB, over the 128.0 MiB a CIFAR-10 batch may have",
    )


def test_cifar_tar_member_that_is_a_link_is_refused(tmp_path):
    link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = tar_of(tmp_path / "c.tar.gz", [(link, None)] + [batch_member(i) for i in range(2, 6)])
    with pytest.raises(DataError, match="data_batch_1: is a symbolic link, not a CIFAR-10 batch"):
        load("cifar10", archive, channels=3)


def test_cifar_tar_member_over_the_size_bound_is_refused(tmp_path):
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = 300 * MiB  # a header only: the data it claims is not there
    archive = tmp_path / "c.tar"
    archive.write_bytes(info.tobuf())
    with pytest.raises(DataError, match=r"data_batch_1: is 300\.0 MiB, over the 128\.0 MiB"):
        load("cifar10", archive, channels=3)


def test_cifar_tar_that_inflates_past_its_bound_stops_there(tmp_path):
    filler = tarfile.TarInfo("cifar-10-batches-py/filler")
    filler.size = 2 * GiB
    archive = tmp_path / "c.tar"
    archive.write_bytes(filler.tobuf())
    with pytest.raises(DataError, match=r"c\.tar: inflates past 1\.0 GiB before its 5 batches"):
        load("cifar10", archive, channels=3)


# --- 2. bombs: sizes are checked before anything is inflated ----------------------------------


def test_idx_gzip_bomb_is_not_inflated(tmp_path):
    from dcgan.data.sources import read_idx_images

    path = tmp_path / "train-images-idx3-ubyte.gz"
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip wrapper
    with open(path, "wb") as stream:
        stream.write(deflate.compress(idx_header(2, 28, 28) + bytes(2 * 28 * 28)))
        for _ in range(64):  # 64 MiB of zeros after the two images, in 64 KiB of file
            stream.write(deflate.compress(bytes(MiB)))
        stream.write(deflate.flush())
    assert path.stat().st_size < 256 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="has data after the 2 images of 28x28 its header"):
            read_idx_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB


@pytest.mark.parametrize(
    ("shape", "declared"),
    [
        ((10_000_000, 28, 28), "10,000,000 images of 28x28 (7.3 GiB)"),
        ((1, 5000, 1), "1 images of 5000x1 (4.9 KiB)"),
    ],
    ids=["a billion pixels", "a tall image"],
)
def test_idx_header_declaring_too_much_is_refused(tmp_path, shape, declared):
    folder = tmp_path / "fashion"
    folder.mkdir()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as stream:
        stream.write(idx_header(*shape) + bytes(1000))
    data = {"source": "fashion_mnist", "path": str(folder), "image_size": 16}
    one_line(
        train(tmp_path, data),
        tmp_path,
        f"train-images-idx3-ubyte.gz: header declares {declared}",
        "over the 1024x1024 pixels and 1.0 GiB in all that dcgan reads",
    )


def test_mnist_npz_zip_bomb_is_refused(tmp_path):
    npy = npy_bytes({"descr": "|u1", "fortran_order": False, "shape": (2, 28, 28)}, bytes(1568))
    path = mnist_npz(tmp_path / "mnist.npz", npy)
    raw = bytearray(path.read_bytes())
    entry = raw.index(b"PK\x01\x02")  # x_train.npy's entry in the central directory
    raw[entry + 24 : entry + 28] = struct.pack("<I", 2 * GiB)  # its inflated size
    path.write_bytes(bytes(raw))
    data = {"source": "mnist", "path": str(path), "image_size": 16}
    one_line(
        train(tmp_path, data),
        tmp_path,
        f"data.source mnist: {path}: its x_train.npy inflates to 2.0 GiB, over the 1.0 GiB",
    )


def test_mnist_npz_header_declaring_too_much_is_refused(tmp_path):
    header = {"descr": "|u1", "fortran_order": False, "shape": (100_000, 1000, 1000)}
    path = mnist_npz(tmp_path / "mnist.npz", npy_bytes(header, bytes(1000)))
    with pytest.raises(DataError, match=r"header declares 100,000 images of 1000x1000 \(93\.1 GiB"):
        load("mnist", path)


@pytest.mark.parametrize(
    ("array", "found"),
    [
        (np.zeros((3, 28, 28)), "its x_train is a float64 array of shape (3, 28, 28)"),
        (np.zeros((3, 784), np.uint8), "its x_train is a uint8 array of shape (3, 784)"),
        (np.array([[[None]]] * 3, dtype=object), "its x_train is a object array"),
    ],
    ids=["float", "flat", "objects"],
)
def test_mnist_npz_array_that_is_not_uint8_images_is_refused(tmp_path, array, found):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    path = mnist_npz(tmp_path / "mnist.npz", buffer.getvalue())
    with pytest.raises(DataError, match="not uint8 images") as caught:
        load("mnist", path)
    assert found in str(caught.value)


# --- 3. special files: a FIFO or a device is refused by name, never read -------------------


def test_fifo_as_a_cifar_batch_is_one_line(tmp_path):
    folder = cifar_folder(tmp_path)
    fifo = folder / "data_batch_1"
    fifo.unlink()
    os.mkfifo(fifo)
    one_line(
        train(tmp_path, cifar_data(folder), fifo),
        tmp_path,
        f"{fifo}: is a FIFO (named pipe), not a CIFAR-10 batch",
    )


def test_fifo_as_the_cifar_archive_is_one_line(tmp_path):
    fifo = tmp_path / "cifar-10-python.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is a FIFO \\(named pipe\\), not a CIFAR-10 archive"):
        load("cifar10", fifo, 16, 3, fifo)


def test_fifo_as_the_idx_file_is_one_line(tmp_path):
    fifo = tmp_path / "train-images-idx3-ubyte.gz"
    os.mkfifo(fifo)
    data = {"source": "fashion_mnist", "path": str(tmp_path), "image_size": 16}
    one_line(
        train(tmp_path, data, fifo),
        tmp_path,
        f"{fifo}: is a FIFO (named pipe), not a gzipped IDX file",
    )


def test_dev_zero_as_the_idx_file_is_one_line(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").symlink_to("/dev/zero")
    data = {"source": "fashion_mnist", "path": str(tmp_path), "image_size": 16}
    one_line(
        train(tmp_path, data),
        tmp_path,
        "train-images-idx3-ubyte.gz: is a character device, not a gzipped IDX file",
    )


def test_fifo_as_mnist_npz_is_one_line(tmp_path):
    fifo = tmp_path / "mnist.npz"
    os.mkfifo(fifo)
    data = {"source": "mnist", "path": str(tmp_path), "image_size": 16}
    one_line(
        train(tmp_path, data, fifo), tmp_path, f"data.source mnist: {fifo}: is a FIFO (named pipe)"
    )


def test_fifo_as_an_stl10_file_is_one_line(tmp_path):
    fifo = tmp_path / "train_X.bin"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="train_X.bin: is a FIFO \\(named pipe\\), not a STL-10"):
        load("stl10", tmp_path, 48, 3, fifo)


def test_folders_nested_too_deep_are_one_line(tmp_path):
    folder = tmp_path / "images"
    for i in range(2):
        save_image(folder / f"{i}.png", random_pixels((16, 16, 3), seed=i))
    deepest = folder
    for _ in range(1200):  # deeper than Python's recursion limit; os.makedirs recurses
        deepest = deepest / "d"
        deepest.mkdir()
    try:
        result = train(tmp_path, {"source": "folder", "path": str(folder), "channels": 3})
        one_line(result, tmp_path, f"data.path {folder}: folders nest deeper than the 64 levels")
    finally:  # rmtree recurses too: take the chain down from its bottom
        while deepest != folder:
            deepest.rmdir()
            deepest = deepest.parent


def test_special_files_named_like_images_are_skipped_with_their_reason(tmp_path, caplog):
    for i in range(4):
        save_image(tmp_path / f"{i}.png", random_pixels((16, 16, 3), seed=i))
    os.mkfifo(tmp_path / "a-pipe.png")
    (tmp_path / "b-zero.png").symlink_to("/dev/zero")
    with caplog.at_level(logging.WARNING, logger="dcgan"):
        images = load("folder", tmp_path, 16, 3, tmp_path / "a-pipe.png")
    assert len(images) == 4
    assert "skipped 2 unreadable or too small file(s) of 6" in caplog.text
    assert "a-pipe.png: is a FIFO (named pipe), not a picture file" in caplog.text


# --- 4. errors outside the error paths --------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_too_few_images_are_one_line(tmp_path, count):
    folder = tmp_path / "few"
    for i in range(count):
        save_image(folder / f"{i}.png", random_pixels((16, 16, 3), seed=i))
    usable = "1 usable image" if count == 1 else f"{count} usable images"
    one_line(
        train(tmp_path, {"source": "folder", "path": str(folder), "channels": 3}),
        tmp_path,
        f"data.source folder, data.path {folder}: only {usable}; a GAN run needs at least 4",
    )


def test_too_few_usable_images_name_the_first_unusable_file(tmp_path):
    folder = tmp_path / "few"
    for i in range(2):
        save_image(folder / f"{i}.png", random_pixels((16, 16, 3), seed=i))
    (folder / "cut.png").write_bytes(b"\x89PNG not really")
    one_line(
        train(tmp_path, {"source": "folder", "path": str(folder), "channels": 3}),
        tmp_path,
        "only 2 usable images of 3 (first unusable: cut.png: UnidentifiedImageError",
        "a GAN run needs at least 4",
    )


def test_max_images_of_one_is_one_line(tmp_path):
    one_line(
        train(tmp_path, {"max_images": 1}),
        tmp_path,
        "data.source digits: only 1 usable image (data.max_images is 1); a GAN run needs at "
        "least 4 (its evaluation compares sets of 4) and thousands to learn anything",
    )


def test_empty_stl10_file_is_one_line(tmp_path):
    (tmp_path / "train_X.bin").write_bytes(b"")
    with pytest.raises(DataError, match="size 0 bytes is not a whole number of 96x96x3 images"):
        load("stl10", tmp_path, 48, 3)


# --- 5. file names that are not UTF-8 or hold a newline ---------------------------------------


def broken_images(folder: Path, *names: bytes) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        with open(os.fsencode(folder) + b"/" + name, "wb") as stream:
            stream.write(b"not a picture")


def test_unusable_image_named_in_another_encoding_is_one_escaped_line(tmp_path):
    broken_images(tmp_path / "images", b"\xff\xfe.png")
    data = {"source": "folder", "path": str(tmp_path / "images"), "channels": 3}
    one_line(train(tmp_path, data), tmp_path, "(first: \\xff\\xfe.png: UnidentifiedImageError")


def test_newline_in_an_image_name_keeps_the_error_one_line(tmp_path):
    broken_images(tmp_path / "images", b"two\nlines.png")
    data = {"source": "folder", "path": str(tmp_path / "images"), "channels": 3}
    one_line(train(tmp_path, data), tmp_path, "(first: two\\nlines.png: UnidentifiedImageError")


def test_images_named_in_another_encoding_train(tmp_path):
    folder = tmp_path / "images"
    for i, name in enumerate([b"\xff\xfe.png", b"\xfe.png", b"ok.png", b"\xc3(.png"]):
        save_image(
            Path(os.fsdecode(os.fsencode(folder) + b"/" + name)), random_pixels((16, 16, 3), i)
        )
    broken_images(folder, b"broken-\xfe\nname.png")
    result = train(tmp_path, {"source": "folder", "path": str(folder), "channels": 3})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Logging error" not in result.output
    (run,) = run_dirs(tmp_path)
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "skipped 1 unreadable or too small file(s) of 5" in log
    assert "broken-\\xfe\\nname.png: UnidentifiedImageError" in log
