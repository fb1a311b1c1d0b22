"""Every data source read from small files in its real published format."""

from __future__ import annotations

import gzip
import io
import logging
import pickle
import tarfile

import numpy as np
import pytest
from conftest import random_pixels, save_image
from PIL import Image

from dcgan.config import DataConfig
from dcgan.data.sources import load_images, read_idx_images
from dcgan.errors import DataError


def folder_config(path, size=16, channels=3, **extra) -> DataConfig:
    return DataConfig(source="folder", path=path, image_size=size, channels=channels, **extra)


def test_folder_reads_every_format_and_mode_recursively(tmp_path):
    rgb = random_pixels((20, 30, 3))
    save_image(tmp_path / "a.jpg", rgb)
    save_image(tmp_path / "sub" / "b.png", random_pixels((24, 24)))  # gray
    save_image(tmp_path / "sub" / "deeper" / "c.BMP", rgb)
    save_image(tmp_path / "d.webp", rgb)
    save_image(tmp_path / "e.gif", rgb)  # palette after GIF quantisation
    save_image(tmp_path / "f.png", random_pixels((16, 16, 4)), "RGBA")
    sixteen = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 250).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    Image.fromarray(random_pixels((10, 10)), "L").convert("P").save(tmp_path / "h.png")
    (tmp_path / "notes.txt").write_text("not an image")

    images = load_images(folder_config(tmp_path))
    assert images.shape == (8, 16, 16, 3)
    assert images.dtype == np.uint8
    gray = load_images(folder_config(tmp_path, size=8, channels=1))
    assert gray.shape == (8, 8, 8, 1)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    for i in range(4):  # a run needs at least 4 images
        Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / f"deep{i}.png")
    images = load_images(folder_config(tmp_path, size=8, channels=1))
    assert 150 < int(images.mean()) < 160  # 40000 / 65535 * 255 = 155.6


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    for i in range(4):  # a run needs at least 4 images
        save_image(tmp_path / f"clear{i}.png", rgba, "RGBA")
    assert (load_images(folder_config(tmp_path, size=8)) == 255).all()


def test_centre_crop_keeps_the_middle(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # a white square in the middle of a black strip
    for i in range(4):  # a run needs at least 4 images
        save_image(tmp_path / f"wide{i}.png", wide)
    assert load_images(folder_config(tmp_path, size=10)).min() > 200


def _bicycle(height: int, width: int) -> np.ndarray:
    """A side view on a plain ground: a grey (90) background with a red frame spanning the
    whole width, its two "wheels" touching the left and right edges."""
    image = np.full((height, width, 3), 90, np.uint8)
    image[height // 3 : 2 * height // 3, :] = (255, 0, 0)
    image[1:-1, :2] = (0, 0, 255)  # the wheels: blue columns at either end
    image[1:-1, -2:] = (0, 0, 255)
    return image


def test_pad_keeps_the_whole_picture_and_fills_with_its_border(tmp_path):
    for i in range(4):
        save_image(tmp_path / f"bike{i}.png", _bicycle(20, 60))
    padded = load_images(folder_config(tmp_path, size=24, resize="pad"))
    assert padded.shape == (4, 24, 24, 3)
    first = padded[0].astype(int)
    # 60x20 shrinks to 24x8 in the middle rows: the wheels at both edges survive ...
    assert first[12, 0, 2] > 150 and first[12, -1, 2] > 150
    # ... and the bands above and below are the picture's own ground, not black or white.
    assert np.abs(first[:7] - 90).max() <= 1 and np.abs(first[-7:] - 90).max() <= 1
    cropped = load_images(folder_config(tmp_path, size=24, resize="crop"))[0].astype(int)
    assert cropped[:, :, 2].max() < 100  # the crop cut both wheels off


def test_rectangular_size_from_square_and_wide_sources(tmp_path):
    for i in range(4):
        save_image(tmp_path / f"bike{i}.png", _bicycle(32, 64))
    wide = load_images(folder_config(tmp_path, size=(16, 32), resize="crop"))
    assert wide.shape == (4, 16, 32, 3)  # height x width, the images' own aspect
    assert wide[0, 8, 0, 2] > 150 and wide[0, 8, -1, 2] > 150  # nothing to cut at 2:1
    digits = load_images(DataConfig(source="digits", image_size=(16, 32), resize="pad"))
    assert digits.shape[1:] == (16, 32, 1)
    assert (digits[:, :, :4] == 0).all()  # padded with the digits' black ground


def test_pad_decides_what_is_too_small_by_the_whole_image(tmp_path):
    for i in range(4):
        save_image(tmp_path / f"strip{i}.png", _bicycle(2, 64))
    # Cropping a 64x2 strip to a square would stretch 2 rows 8x and more; padding does not.
    with pytest.raises(DataError, match="too small: 64x2 would be stretched over 8x"):
        load_images(folder_config(tmp_path, size=24, resize="crop"))
    assert load_images(folder_config(tmp_path, size=24, resize="pad")).shape == (4, 24, 24, 3)


def test_unreadable_files_are_skipped_and_counted(tmp_path, caplog):
    for i in range(4):  # a run needs at least 4 images
        save_image(tmp_path / f"good{i}.png", random_pixels((8, 8, 3), seed=i))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG not really")
    buffer = io.BytesIO()
    Image.fromarray(random_pixels((64, 64, 3))).save(buffer, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[:200])
    with caplog.at_level(logging.WARNING, logger="dcgan"):
        images = load_images(folder_config(tmp_path, size=8))
    assert len(images) == 4
    assert "skipped 3 unreadable or too small file(s) of 7" in caplog.text


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no image files \(.*\) in this folder or below"):
        load_images(folder_config(tmp_path))


def test_folder_of_only_broken_images_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"none of the 1 image files can be used \(first: "):
        load_images(folder_config(tmp_path))


def test_max_images_limits_the_folder(tmp_path):
    for i in range(6):
        save_image(tmp_path / f"{i}.png", random_pixels((8, 8, 3), seed=i))
    assert len(load_images(folder_config(tmp_path, size=8, max_images=4))) == 4


def test_digits_are_embedded_and_scaled():
    images = load_images(DataConfig(source="digits", image_size=32, channels=1))
    assert images.shape == (1797, 32, 32, 1)
    assert images.max() > 240 and images.min() == 0
    rgb = load_images(DataConfig(source="digits", image_size=28, channels=3, max_images=10))
    assert rgb.shape == (10, 28, 28, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all()


def keras_datasets(monkeypatch, tmp_path):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    (home / "datasets").mkdir(parents=True)
    return home / "datasets"


def test_mnist_from_keras_cache_npz(monkeypatch, tmp_path):
    cache = keras_datasets(monkeypatch, tmp_path)
    x_train = random_pixels((6, 28, 28))
    np.savez(
        cache / "mnist.npz",
        x_train=x_train,
        y_train=np.arange(6),
        x_test=x_train[:2],
        y_test=np.arange(2),
    )
    images = load_images(DataConfig(source="mnist", image_size=28, channels=1))
    assert images.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(images[..., 0], x_train)


def write_idx(path, images: np.ndarray) -> None:
    header = (2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in images.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + images.tobytes())


def test_fashion_mnist_from_idx_files(monkeypatch, tmp_path):
    cache = keras_datasets(monkeypatch, tmp_path)
    (cache / "fashion-mnist").mkdir()
    x_train = random_pixels((5, 28, 28))
    write_idx(cache / "fashion-mnist" / "train-images-idx3-ubyte.gz", x_train)
    images = load_images(DataConfig(source="fashion_mnist", image_size=32, channels=1))
    assert images.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(
        read_idx_images(cache / "fashion-mnist" / "train-images-idx3-ubyte.gz"), x_train
    )


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = (2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (5, 28, 28))
    with gzip.open(path, "wb") as stream:
        stream.write(header + b"\0" * 100)
    with pytest.raises(DataError, match="truncated: header says 5 images of 28x28"):
        read_idx_images(path)


def cifar_batch(seed: int) -> tuple[bytes, np.ndarray]:
    images = random_pixels((4, 32, 32, 3), seed=seed)
    rows = images.transpose(0, 3, 1, 2).reshape(4, 3072)  # the published layout: CHW rows
    return pickle.dumps({b"data": rows, b"labels": [0, 1, 2, 3]}), images


def test_cifar10_from_extracted_batches(monkeypatch, tmp_path):
    cache = keras_datasets(monkeypatch, tmp_path)
    folder = cache / "cifar-10-batches-py"
    folder.mkdir()
    expected = []
    for i in range(1, 6):
        data, images = cifar_batch(i)
        (folder / f"data_batch_{i}").write_bytes(data)
        expected.append(images)
    (folder / "test_batch").write_bytes(cifar_batch(9)[0])
    images = load_images(DataConfig(source="cifar10", image_size=32, channels=3))
    np.testing.assert_array_equal(images, np.concatenate(expected))


def test_cifar10_from_the_tar_archive(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(1, 6):
            data, _ = cifar_batch(i)
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    images = load_images(DataConfig(source="cifar10", path=archive, image_size=64, channels=3))
    assert images.shape == (20, 64, 64, 3)


def test_stl10_binary_is_column_major(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    images = random_pixels((5, 96, 96, 3))
    # STL-10 stores each image channel by channel, each channel column by column.
    images.transpose(0, 3, 2, 1).tofile(folder / "train_X.bin")
    loaded = load_images(DataConfig(source="stl10", path=tmp_path, image_size=96, channels=3))
    np.testing.assert_array_equal(loaded, images)
    small = load_images(
        DataConfig(source="stl10", path=tmp_path, image_size=48, channels=3, max_images=4)
    )
    assert small.shape == (4, 48, 48, 3)


def test_stl10_truncated_file_is_reported(tmp_path):
    (tmp_path / "train_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DataError, match="not a whole number of 96x96x3 images"):
        load_images(DataConfig(source="stl10", path=tmp_path, image_size=48, channels=3))


def test_stl10_folder_without_files_says_what_to_place(tmp_path):
    with pytest.raises(DataError, match=r"place train_X.bin and/or unlabeled_X.bin"):
        load_images(DataConfig(source="stl10", path=tmp_path, image_size=48, channels=3))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "mnist",
            r"mnist: no local copy and DCGAN_OFFLINE is set; place mnist.npz .* at .*mnist.npz",
        ),
        ("fashion_mnist", r"no local copy .* place train-images-idx3-ubyte.gz in .*fashion-mnist"),
        (
            "cifar10",
            r"no local copy .* place cifar-10-python.tar.gz, extracted so that .*data_batch_1",
        ),
    ],
)
def test_offline_without_a_copy_says_which_file_goes_where(source, expected):
    with pytest.raises(DataError, match=expected):
        load_images(DataConfig(source=source, image_size=32, channels=1))
