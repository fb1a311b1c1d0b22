"""Class-conditional runs: classes from a data set or a folder's sub-folders, the models'
class inputs, training and resuming, grids with a row per class, `sample --class`."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import invoke_checked as invoke
from conftest import run_dirs, save_image, tiny_config, write_config
from PIL import Image

from dcgan.config import Config, DataConfig, load
from dcgan.data.classes import folder_classes, with_classes
from dcgan.data.sources import load_labelled
from dcgan.errors import ConfigError, DataError

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def colour_folder(root, counts: dict[str, int]):
    """root/<colour>/<i>.png: plain squares of the colour, 12x12."""
    for name, count in counts.items():
        for i in range(count):
            save_image(root / name / f"{i}.png", np.full((12, 12, 3), COLOURS[name], np.uint8))
    return root


def conditional(tmp_path, **data) -> Config:
    raw = {"model": {"conditional": True}, "data": data}
    path = write_config(tmp_path, raw)
    return load(path)


# --- config and classes ---------------------------------------------------------------------


def test_class_settings_that_cannot_work_are_one_line_each(tmp_path):
    cases = [
        ({"data": {"classes": ["a", "b"]}}, "data.classes: applies only with model.conditional"),
        ({"model": {"conditional": True, "arch": "tutorial"}, "data": {"image_size": 28}},
         "model.conditional: needs model.arch 'dcgan'"),
        ({"model": {"conditional": True}, "data": {"classes": ["a", "b", "a"]}},
         "data.classes: names 'a' twice"),
        ({"model": {"conditional": True}, "data": {"classes": ["only"]}}, "data.classes"),
    ]  # fmt: skip
    for raw, expected in cases:
        with pytest.raises(ConfigError) as caught:
            load(write_config(tmp_path, raw))
        assert expected in str(caught.value), str(caught.value)


def test_a_conditional_run_seeks_modes_unless_told_otherwise(tmp_path):
    assert conditional(tmp_path).train.mode_seeking == 1.0
    raw = {"model": {"conditional": True}, "train": {"mode_seeking": 0.0}}
    assert load(write_config(tmp_path, raw)).train.mode_seeking == 0.0
    assert load(None).train.mode_seeking == 0.0  # the paper's DCGAN has no such term


def test_standard_sets_bring_their_own_class_names(tmp_path):
    config = with_classes(conditional(tmp_path))
    assert config.data.classes == [str(i) for i in range(10)]
    assert with_classes(load(None)).data.classes is None  # unconditional: untouched
    with pytest.raises(DataError, match="data.source digits has its own classes"):
        with_classes(conditional(tmp_path, classes=["a", "b"]))


def test_a_folder_s_classes_are_its_sub_folders_sorted(tmp_path):
    folder = colour_folder(tmp_path / "pictures", {"red": 2, "blue": 2, "green": 2})
    (folder / ".hidden").mkdir()
    assert folder_classes(folder) == ["blue", "green", "red"]
    assert folder_classes(folder, ["red", "blue"]) == ["red", "blue"]
    with pytest.raises(DataError, match="data.classes: 'cyan' is not a sub-folder of .*"):
        folder_classes(folder, ["red", "cyan"])


def test_sub_folder_names_that_are_not_class_names_are_refused(tmp_path):
    folder = colour_folder(tmp_path / "pictures", {"red": 2, "blue": 2})
    (folder / ("x" * 120)).mkdir()
    with pytest.raises(DataError) as caught:
        with_classes(conditional(tmp_path, classes=None, source="folder", path=str(folder)))
    assert f"data.path {folder}: sub-folder '" in str(caught.value)
    assert "is not a class name (1 to 100 printable characters)" in str(caught.value)


def test_folders_that_cannot_give_classes_are_refused(tmp_path):
    loose = colour_folder(tmp_path / "loose", {"red": 2, "blue": 2})
    save_image(loose / "stray.png", np.zeros((12, 12, 3), np.uint8))
    with pytest.raises(DataError) as caught:
        folder_classes(loose)
    assert "1 image file(s) directly in the folder (first: stray.png)" in str(caught.value)
    # Named classes leave the stray image out instead.
    assert folder_classes(loose, ["blue", "red"]) == ["blue", "red"]
    single = colour_folder(tmp_path / "single", {"red": 4})
    with pytest.raises(DataError, match="needs two or more class sub-folders.*only one, red"):
        folder_classes(single)
    with pytest.raises(DataError, match="found none"):
        folder_classes((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_each_image_gets_the_class_of_its_sub_folder(tmp_path):
    folder = colour_folder(tmp_path / "pictures", {"red": 3, "blue": 5, "green": 2})
    data = DataConfig(
        source="folder", path=folder, image_size=8, channels=3, classes=["blue", "green", "red"]
    )
    images, labels = load_labelled(data)
    assert len(images) == len(labels) == 10 and labels.dtype == np.int32
    assert np.bincount(labels).tolist() == [5, 2, 3]
    for image, label in zip(images, labels, strict=True):
        expected = COLOURS[data.classes[label]]
        assert tuple(image[4, 4]) == expected
    # data.max_images: the classes take turns, so each keeps a share.
    limited = data.model_copy(update={"max_images": 6})
    assert np.bincount(load_labelled(limited)[1]).tolist() == [2, 2, 2]


def test_a_class_without_a_usable_image_is_named(tmp_path):
    folder = colour_folder(tmp_path / "pictures", {"red": 4, "blue": 4})
    (folder / "green").mkdir()
    (folder / "green" / "broken.png").write_bytes(b"not a picture")
    data = DataConfig(
        source="folder", path=folder, image_size=8, channels=3, classes=["blue", "green", "red"]
    )
    with pytest.raises(DataError) as caught:
        load_labelled(data)
    message = str(caught.value)
    assert "class 'green': none of its 1 image files can be used (first: broken.png:" in message
    (folder / "green" / "broken.png").unlink()
    with pytest.raises(DataError, match="class 'green': no image files"):
        load_labelled(data)


# --- the models --------------------------------------------------------------------------


def test_g_draws_each_class_and_d_projects_its_embedding():
    import keras
    import tensorflow as tf

    from dcgan.models.networks import build_discriminator, build_generator

    # Seeded weights: unseeded, one start in many had the class move the picture less than
    # half as much as the latent (0.43; 0.68 to 1.50 over twenty seeds).
    keras.utils.set_random_seed(0)
    config = Config.model_validate(
        {
            "data": {"image_size": 16, "classes": ["a", "b", "c"]},
            "model": {"conditional": True, "latent_dim": 8, "g_width": 8, "d_width": 8},
        }
    )
    generator, discriminator = build_generator(config), build_discriminator(config)
    z = tf.constant(np.random.default_rng(0).standard_normal((3, 8)), tf.float32)
    same_z = tf.repeat(z[:1], 3, axis=0)
    images = generator([same_z, tf.constant([0, 1, 2])], training=False)
    assert images.shape == (3, 16, 16, 1)
    # From the start, the class changes the picture about as much as the latent does.
    other_z = generator([z, tf.constant([0, 0, 0])], training=False).numpy()
    images, images_seen = images.numpy(), images
    by_class, by_z = np.abs(images[1] - images[0]).mean(), np.abs(other_z[1] - images[0]).mean()
    assert by_class > 0.5 * by_z
    # D's logit: a linear head on its features plus <features, embedding of the class>
    # (an embedding as large as a trained one, so that its term counts).
    table = discriminator.get_layer("class_embedding").kernel
    table.assign(np.random.default_rng(1).standard_normal(table.shape))
    classes = tf.constant([2, 0, 1])
    logits = discriminator([images_seen, classes], training=False).numpy()[:, 0]
    features = tf.keras.Model(discriminator.inputs, discriminator.get_layer("flatten").output)
    h = features([images_seen, classes], training=False).numpy()
    head = discriminator.get_layer("logit")
    embedding = discriminator.get_layer("class_embedding").kernel.numpy()
    expected = h @ head.kernel.numpy()[:, 0] + head.bias.numpy()[0]
    expected += np.sum(h * embedding[classes.numpy()], axis=1)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_the_mode_seeking_term_is_the_inverse_of_image_gap_over_latent_gap():
    import tensorflow as tf

    from dcgan.models.adversarial import mode_seeking_loss

    latents = tf.constant([[0.0, 0.0], [1.0, 3.0], [2.0, 2.0], [1.0, 1.0], [9.0, 9.0]])
    images = tf.zeros((5, 2, 2, 1)) + tf.reshape([0.0, 0.0, 0.5, 1.0, 7.0], (5, 1, 1, 1))
    # Pairs (0, 2) and (1, 3); the fifth image has no partner. Image gaps 0.5 and 1.0,
    # latent gaps mean(2, 2) and mean(0, 2).
    image_gap, latent_gap = (0.5 + 1.0) / 2, (2 + 2 + 0 + 2) / 4
    expected = 1.0 / (image_gap / latent_gap + 1e-5)
    assert float(mode_seeking_loss(latents, images)) == pytest.approx(expected, rel=1e-6)


# --- a conditional run end to end ---------------------------------------------------------


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditional")
    colour_folder(root / "pictures", {"red": 6, "blue": 6, "green": 6})
    data = {"source": "folder", "path": str(root / "pictures"), "channels": 3, "max_images": None}
    config = tiny_config(root, data=data, model={"conditional": True, "ema": 0.9})
    config["train"].update({"d_steps": 2, "mode_seeking": 1.0})
    config["eval"] = {"every": 3, "num_samples": 12}
    invoke("train", "--config", write_config(root, config))
    (run,) = run_dirs(root)
    return run


def test_the_run_records_its_classes_and_grids_have_a_row_per_class(colour_run):
    saved = yaml.safe_load((colour_run / "config.yaml").read_text())
    assert saved["data"]["classes"] == ["blue", "green", "red"]
    assert saved["model"]["conditional"] is True
    grid = sorted((colour_run / "samples").glob("step-*.png"))[-1]
    with Image.open(grid) as image:
        width, height = image.size
    # num_samples 4 over 3 classes: 2 columns of the same latents, a row per class.
    assert (width, height) == (2 * (16 + 2) + 2, 3 * (16 + 2) + 2)
    log = (colour_run / "train.log").read_text()
    assert "KID" in log and "copy rate" in log


def test_a_conditional_run_resumes(colour_run):
    invoke("train", "--resume", colour_run, "--set", "train.steps=8")
    saved = yaml.safe_load((colour_run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 8 and saved["data"]["classes"] == ["blue", "green", "red"]
    invoke("train", "--resume", colour_run, "--set", "data.classes=[red,blue]", code=2)


def test_sample_by_class_name_or_index_names_each_file_by_its_class(colour_run, tmp_path):
    invoke("sample", "--ckpt", colour_run, "--class", "red", "-n", 3, "--out", tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "000000-red.png", "000001-red.png", "000002-red.png",
    ]  # fmt: skip
    invoke("sample", "--ckpt", colour_run, "--class", 2, "-n", 3, "--out", tmp_path / "b")
    for name in ("000000-red.png", "000002-red.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # Without --class: a class per image, drawn from the seed, the same latents.
    invoke("sample", "--ckpt", colour_run, "-n", 30, "--out", tmp_path / "c")
    drawn = [p.stem.split("-")[1] for p in sorted((tmp_path / "c").iterdir())]
    assert set(drawn) == {"blue", "green", "red"}
    again = invoke("sample", "--ckpt", colour_run, "-n", 30, "--batch-size", 7,
                   "--out", tmp_path / "d")  # fmt: skip
    assert "30 images" in again.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(
        p.name for p in (tmp_path / "c").iterdir()
    )
    first_red = next(p for p in sorted((tmp_path / "c").iterdir()) if p.stem.endswith("red"))
    index = int(first_red.stem.split("-")[0])
    invoke("sample", "--ckpt", colour_run, "--class", "red", "-n", index + 1,
           "--out", tmp_path / "e")  # fmt: skip
    same = tmp_path / "e" / first_red.name
    assert same.read_bytes() == first_red.read_bytes()  # same seed, same latent, same class


def test_unknown_classes_and_classes_of_unconditional_runs_are_one_line(colour_run, tiny_run):
    result = invoke("sample", "--ckpt", colour_run, "--class", "cyan", code=2)
    assert "--class cyan: not a class of" in result.output
    assert "(its classes: blue, green, red; or an index 0..2)" in result.output
    assert "Traceback" not in result.output
    result = invoke("sample", "--ckpt", colour_run, "--class", "3", code=2)
    assert "not a class of" in result.output
    result = invoke("sample", "--ckpt", tiny_run, "--class", "1", code=2)
    assert "is not a conditional generator (model.conditional was off)" in result.output


def _tile(grid_path, row: int, column: int, size: int = 16) -> np.ndarray:
    with Image.open(grid_path) as image:
        grid = np.asarray(image)
    top, left = 2 + row * (size + 2), 2 + column * (size + 2)
    return grid[top : top + size, left : left + size]


def _only_png(folder) -> np.ndarray:
    (path,) = sorted(folder.glob("*.png"))
    with Image.open(path) as image:
        return np.asarray(image)


def test_interpolate_keeps_a_class_or_walks_between_classes(colour_run, tmp_path):
    # Default: the first seed's class as `sample --seed S -n 1` draws it, kept throughout.
    invoke("sample", "--ckpt", colour_run, "--seed", 5, "-n", 1, "--out", tmp_path / "s5")
    (drawn,) = sorted((tmp_path / "s5").glob("*.png"))
    drawn_class = drawn.stem.split("-")[1]
    invoke("interpolate", "--ckpt", colour_run, "--seeds", "5,6", "--steps", 4,
           "--out", tmp_path / "walk")  # fmt: skip
    grid = tmp_path / "walk" / f"seeds-5-6-slerp-class-{drawn_class}.png"
    np.testing.assert_array_equal(_tile(grid, 0, 0), _only_png(tmp_path / "s5"))
    invoke("sample", "--ckpt", colour_run, "--seed", 6, "-n", 1, "--class", drawn_class,
           "--out", tmp_path / "s6")  # fmt: skip
    np.testing.assert_array_equal(_tile(grid, 0, 3), _only_png(tmp_path / "s6"))
    # Between classes: one latent (seeds 5,5), blue at the start, red at the end, a blend
    # of the two class embeddings between them.
    invoke("interpolate", "--ckpt", colour_run, "--seeds", "5,5", "--steps", 5,
           "--class", "blue,red", "--out", tmp_path / "between")  # fmt: skip
    grid = tmp_path / "between" / "seeds-5-5-slerp-class-blue-red.png"
    for column, name in ((0, "blue"), (4, "red")):
        out = tmp_path / f"five-{name}"
        invoke("sample", "--ckpt", colour_run, "--seed", 5, "-n", 1, "--class", name,
               "--out", out)  # fmt: skip
        np.testing.assert_array_equal(_tile(grid, 0, column), _only_png(out))
    middle = _tile(grid, 0, 2).astype(int)
    assert np.abs(middle - _tile(grid, 0, 0)).mean() > 0
    assert np.abs(middle - _tile(grid, 0, 4)).mean() > 0
    result = invoke("interpolate", "--ckpt", colour_run, "--class", "blue,cyan", code=2)
    assert "--class cyan: not a class of" in result.output


def test_each_grid_row_is_a_class_drawn_from_the_same_latents(colour_run):
    from dcgan.generation.loading import load_generator

    generator = load_generator(colour_run)  # its latest checkpoint: the latest grid's step
    step = int(generator.source.rsplit("-", 1)[1])
    noise = np.load(colour_run / "fixed_noise.npy")
    grid = colour_run / "samples" / f"step-{step:07d}.png"
    for label in range(3):
        expected = generator.images(noise[:2], classes=np.full(2, label))
        for column in range(2):
            tile = _tile(grid, label, column).astype(int)
            assert np.abs(tile - expected[column].astype(int)).max() <= 1


class _ByClass:
    """A conditional stand-in generator: class 0 reproduces training images of class 0,
    class 1 draws black images, far from any training image."""

    conditional, classes, latent_dim, run, source = True, ["copied", "black"], 2, None, "stub"

    def __init__(self, copied: np.ndarray):
        self.copied = copied

    def images(self, latents, batch_size=64, classes=None):
        picks = self.copied[np.arange(len(latents)) % len(self.copied)]
        return np.where((classes == 0)[:, None, None, None], picks, 0).astype(np.uint8)


def test_evaluate_scores_each_class_against_its_own_training_images():
    from dcgan.metrics import evaluation, features, scores

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8)
    labels = np.repeat(np.array([0, 1], np.int32), 30)

    def pooled(images):
        x = images.astype(np.float32) / 255.0
        return x.reshape(len(x), 4, 2, 4, 2, 1).mean((2, 4)).reshape(len(x), -1)

    extractor = features.FeatureExtractor("pooled", 16, pooled)
    generator = _ByClass(real[labels == 0])
    results = evaluation.evaluate(
        generator, real, extractor, 40, kid_subsets=10, kid_subset_size=100, real_labels=labels
    )
    copied, noise = results["per_class"]["copied"], results["per_class"]["black"]
    assert copied["copy_rate"] == 1.0 and noise["copy_rate"] == 0.0
    assert copied["generated_images"] == noise["generated_images"] == 20
    assert copied["real_images"] == noise["real_images"] == 30
    # KID: each class's generated features against its own real ones, as scores.kid has it.
    fakes = generator.images(np.zeros((40, 2)), classes=np.arange(40) % 2)
    expected = scores.kid(pooled(real[30:]), pooled(fakes[1::2]), subsets=10)
    assert noise["kid"] == pytest.approx(expected.mean) and noise["kid_subset_size"] == 10
    assert copied["kid"] < noise["kid"]


def test_evaluate_and_nearest_work_on_a_conditional_run(colour_run):
    import json

    result = invoke("evaluate", "--ckpt", colour_run, "-n", 24, "--features", "random")
    for name in ("blue", "green", "red"):
        assert f"  class {name}: KID " in result.output
    (report,) = (colour_run / "eval").glob("step-*-random-*.json")
    per_class = json.loads(report.read_text())["per_class"]
    assert sorted(per_class) == ["blue", "green", "red"]
    assert all(entry["generated_images"] == 8 for entry in per_class.values())
    assert all(entry["real_images"] == 6 for entry in per_class.values())
    result = invoke("nearest", "--ckpt", colour_run, "-n", 2, "-k", 1, "--rate-samples", 12,
                    "--features", "random")  # fmt: skip
    assert "copy rate" in result.output


def test_runs_shows_which_runs_are_conditional_and_their_classes(colour_run):
    result = invoke("runs", colour_run.parent)
    header, row = result.output.strip().splitlines()
    assert header.split()[:4] == ["run", "data", "size", "classes"]
    assert "3: blue, green, red" in row


def test_the_exported_generator_takes_latents_and_class_indices(colour_run, tmp_path):
    import tensorflow as tf

    result = invoke("export", "--ckpt", colour_run, "--format", "savedmodel",
                    "--out", tmp_path / "saved")  # fmt: skip
    assert "classes blue, green, red as class_index 0..2" in result.output
    assert "m.serve([z, class_index])" in result.output
    served = tf.saved_model.load(str(tmp_path / "saved"))
    z = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    images = served.serve([tf.constant(z), tf.constant([2, 2])]).numpy()
    invoke("export", "--ckpt", colour_run, "--out", tmp_path / "g.keras")
    invoke("sample", "--ckpt", tmp_path / "g.keras", "--class", 2, "-n", 2, "--out", tmp_path / "s")
    from dcgan.generation.loading import load_generator

    loaded = load_generator(tmp_path / "g.keras")
    assert loaded.classes == ["0", "1", "2"]  # a file alone knows the count, not the names
    expected = loaded.images(z, classes=np.array([2, 2]))
    np.testing.assert_allclose((images + 1) * 127.5, expected.astype(np.float32), atol=1.0)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_onnx_and_tflite_take_latents_and_class_indices(colour_run, tmp_path, fmt):
    out = tmp_path / f"g.{fmt}"
    result = invoke("export", "--ckpt", colour_run, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    assert "classes blue, green, red as class_index 0..2" in result.output
    z = np.random.default_rng(3).standard_normal((3, 8)).astype(np.float32)
    classes = np.array([0, 2, 1], np.int32)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out))
        names = [spec.name for spec in session.get_inputs()]
        images = session.run(None, dict(zip(names, [z, classes], strict=True)))[0]
    else:
        from ai_edge_litert.interpreter import Interpreter

        images = Interpreter(model_path=str(out)).get_signature_runner()(z=z, class_index=classes)
        images = images["output_0"]
    from dcgan.generation.loading import load_generator

    expected = load_generator(colour_run).model([z, classes], training=False)
    np.testing.assert_allclose(images, np.asarray(expected), atol=1e-5)
    swapped = load_generator(colour_run).model([z, classes[::-1].copy()], training=False)
    assert np.abs(images - np.asarray(swapped)).max() > 1e-3  # the class input matters


# --- labels of the standard data sets, from files in their published formats ---------------


def _cache(monkeypatch, tmp_path):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    (home / "datasets").mkdir(parents=True)
    return home / "datasets"


def _labelled(source: str, **data) -> tuple[np.ndarray, np.ndarray]:
    from dcgan.data.classes import STANDARD_CLASSES

    config = DataConfig(source=source, classes=STANDARD_CLASSES[source], **data)
    return load_labelled(config)


def test_mnist_labels_come_from_y_train(monkeypatch, tmp_path):
    cache = _cache(monkeypatch, tmp_path)
    x_train = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    y_train = np.array([3, 1, 4, 1, 5, 9], np.uint8)
    np.savez(cache / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_train[:1],
             y_test=y_train[:1])  # fmt: skip
    images, labels = _labelled("mnist", image_size=28, channels=1)
    assert labels.tolist() == [3, 1, 4, 1, 5, 9] and len(images) == 6
    np.savez(cache / "mnist.npz", x_train=x_train, y_train=y_train[:5])
    with pytest.raises(DataError, match="5 labels for 6 images"):
        _labelled("mnist", image_size=28, channels=1)


def _idx(path, values: np.ndarray) -> None:
    import gzip

    magic = 2051 if values.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in values.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + values.tobytes())


def test_fashion_mnist_labels_come_from_the_idx1_file(monkeypatch, tmp_path):
    folder = _cache(monkeypatch, tmp_path) / "fashion-mnist"
    folder.mkdir()
    _idx(folder / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is missing"):
        _labelled("fashion_mnist", image_size=28, channels=1)
    _idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 9, 8, 0], np.uint8))
    _, labels = _labelled("fashion_mnist", image_size=28, channels=1)
    assert labels.tolist() == [0, 9, 8, 0]
    _idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 10, 8, 0], np.uint8))
    with pytest.raises(DataError, match="label 10 is not one of the 10 classes"):
        _labelled("fashion_mnist", image_size=28, channels=1)
    import gzip

    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as stream:
        stream.write((2050).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4))
    with pytest.raises(DataError, match=r"not an IDX file \(magic number 2051 or 2049 missing\)"):
        _labelled("fashion_mnist", image_size=28, channels=1)


def test_cifar10_labels_come_from_each_batch(monkeypatch, tmp_path):
    import pickle

    folder = _cache(monkeypatch, tmp_path) / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        rows = np.full((2, 3072), i, np.uint8)
        batch = {b"data": rows, b"labels": [i, 9 - i]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    images, labels = _labelled("cifar10", image_size=32, channels=3)
    assert labels.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    assert (images[labels == 7] == 2).all()  # batch 2's images carry batch 2's labels
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": rows}))
    with pytest.raises(DataError, match="no valid b'labels'"):
        _labelled("cifar10", image_size=32, channels=3)


def test_stl10_labels_come_from_train_y_and_the_unlabelled_split_is_refused(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (np.zeros((3, 3, 96, 96), np.uint8)).tofile(folder / "unlabeled_X.bin")
    with pytest.raises(DataError) as caught:
        _labelled("stl10", path=tmp_path, image_size=48, channels=3)
    assert "needs STL-10's labelled split, train_X.bin and train_y.bin" in str(caught.value)
    assert "unlabeled_X.bin has no labels" in str(caught.value)
    (np.zeros((4, 3, 96, 96), np.uint8)).tofile(folder / "train_X.bin")
    np.array([1, 10, 3, 2], np.uint8).tofile(folder / "train_y.bin")
    images, labels = _labelled("stl10", path=tmp_path, image_size=48, channels=3)
    assert len(images) == 4 and labels.tolist() == [0, 9, 2, 1]  # the file counts from 1


def test_a_folder_s_classes_are_found_before_training_and_shown_by_dry_run(tmp_path):
    folder = colour_folder(tmp_path / "pets", {"red": 2, "blue": 2})
    result = invoke("train", "--data", folder, "--set", "model.conditional=true", "--dry-run")
    assert yaml.safe_load(result.stdout)["data"]["classes"] == ["blue", "red"]
    save_image(folder / "stray.png", np.zeros((12, 12, 3), np.uint8))
    result = invoke("train", "--data", folder, "--set", "model.conditional=true", code=2)
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith(
            f"Error: data.path {folder}: 1 image file(s) directly in the folder (first: stray.png)"
        )
    )
    assert not (tmp_path / "runs").exists()


def test_a_conditional_run_rolls_back_and_trains_on_with_every_loss(tmp_path):
    for loss, norm in (("hinge", "batch"), ("lsgan", "batch"), ("wgan-gp", "layer")):
        root = tmp_path / loss
        root.mkdir()
        config = tiny_config(
            root,
            model={"conditional": True, "d_norm": norm, "d_spectral_norm": True},
            train={"steps": 4, "loss": loss, "g_lr": 1e28, "d_lr": 1e28, "on_nan": "rollback",
                   "rollback_lr_factor": 1e-30, "diffaugment": ["translation"]},
        )  # fmt: skip
        config["output"].update(checkpoint_every=2, sample_every=2)
        invoke("train", "--config", write_config(root, config))
        (run,) = run_dirs(root)
        log = (run / "train.log").read_text()
        assert "rolled back to step-0000000" in log, loss
        assert (run / "generator.keras").is_file() and (
            run / "samples" / "step-0000004.png"
        ).is_file()


def test_saved_latents_give_a_conditional_run_s_files_again(colour_run, tmp_path):
    invoke("sample", "--ckpt", colour_run, "-n", 6, "--save-z", "--out", tmp_path / "a")
    invoke("sample", "--ckpt", colour_run, "--z", tmp_path / "a" / "latents.npy",
           "--out", tmp_path / "b")  # fmt: skip
    first = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert first == sorted(p.name for p in (tmp_path / "b").glob("*.png"))  # the same classes
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # One latent in another class: --z with --class.
    invoke("sample", "--ckpt", colour_run, "--z", tmp_path / "a" / "latents.npy", "-n", 1,
           "--class", "green", "--out", tmp_path / "c")  # fmt: skip
    assert [p.name for p in (tmp_path / "c").glob("*.png")] == ["000000-green.png"]


def test_project_and_arithmetic_on_a_conditional_run(colour_run, tmp_path):
    invoke("sample", "--ckpt", colour_run, "--seed", 4, "-n", 1, "--class", "green",
           "--out", tmp_path / "made")  # fmt: skip
    target = tmp_path / "made" / "000000-green.png"
    # Without --class every class is tried; the best one is reported with the command.
    result = invoke("project", "--ckpt", colour_run, target, "--out", tmp_path / "p",
                    "--features", "random", "--iterations", 30, "--starts", 2)  # fmt: skip
    assert ", class " in result.output and "--class " in result.output
    result = invoke("project", "--ckpt", colour_run, target, "--out", tmp_path / "q",
                    "--class", "green", "--features", "random", "--iterations", 5)  # fmt: skip
    assert ", class green" in result.output and "--class 1" in result.output
    invoke("arithmetic", "--ckpt", colour_run, "1 - 1 + 4", "--class", "green",
           "--out", tmp_path / "a")  # fmt: skip
    invoke("sample", "--ckpt", colour_run, "--z", tmp_path / "a" / "result.npy",
           "--class", "green", "--out", tmp_path / "again")  # fmt: skip
    again = tmp_path / "again" / "000000-green.png"
    assert again.read_bytes() == target.read_bytes()
