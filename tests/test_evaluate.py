"""dcgan evaluate: the pipeline with a small feature extractor, and the real InceptionV3
path with a weights file in Keras' own format written by the test."""

from __future__ import annotations

import json
from pathlib import Path

from dcgan.runtime import import_tensorflow

import_tensorflow()

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from dcgan.cli import main  # noqa: E402
from dcgan.generation.loading import load_generator  # noqa: E402
from dcgan.metrics import evaluation, features  # noqa: E402
from dcgan.models.loaded import LoadedGenerator  # noqa: E402
from dcgan.storage.run_folder import RunDir  # noqa: E402


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained_run(tiny_run) -> Path:
    return tiny_run


def pooled_pixels() -> features.FeatureExtractor:
    """A tiny feature space: 4x4 average-pooled pixels."""

    def embed(images):
        x = images.astype(np.float32) / 255.0
        n, h, w, c = x.shape
        return x.reshape(n, 4, h // 4, 4, w // 4, c).mean((2, 4)).reshape(n, -1)

    return features.FeatureExtractor("pooled", 16, embed)


class FixedImages:
    """Stands in for a generator that draws from a given set of images."""

    def __init__(self, images: np.ndarray, run: RunDir | None = None):
        self.pool, self.run, self.source, self.latent_dim = images, run, "fixed", 2
        self.conditional = False

    def images(self, latents, batch_size=64, classes=None):
        picks = np.abs((latents[:, 0] * 1e6).astype(np.int64)) % len(self.pool)
        return self.pool[picks]


def test_a_generator_that_copies_the_data_scores_near_zero_and_is_caught_copying():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (200, 8, 8, 1), dtype=np.uint8)
    results = evaluation.evaluate(
        FixedImages(real), real, pooled_pixels(), 300, kid_subsets=10, kid_subset_size=100
    )
    assert results["copy_rate"] == 1.0
    assert results["precision"] == 1.0
    assert results["fid"] < 0.05
    assert abs(results["kid"]) < 3 * results["kid_std"] + 1e-3
    assert results["features"] == "pooled"


def test_a_collapsed_generator_scores_worse_than_a_faithful_one():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (200, 8, 8, 1), dtype=np.uint8)
    fresh = rng.integers(0, 256, (200, 8, 8, 1), dtype=np.uint8)
    faithful = evaluation.evaluate(FixedImages(fresh), real, pooled_pixels(), 200, 10, 100)
    collapsed = evaluation.evaluate(FixedImages(fresh[:2]), real, pooled_pixels(), 200, 10, 100)
    assert collapsed["fid"] > 5 * faithful["fid"]
    assert collapsed["kid"] > faithful["kid"] + 3 * collapsed["kid_std"]
    assert collapsed["recall"] < 0.2 < faithful["recall"]
    assert faithful["copy_rate"] < 0.3


def test_real_features_are_computed_once_per_run(trained_run, monkeypatch):
    run = RunDir(trained_run)
    real = np.random.default_rng(2).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    first = evaluation.real_features(run, real, pooled_pixels())
    assert (run.eval_dir / "real-pooled-40.npy").is_file()
    calls = []
    extractor = pooled_pixels()
    extractor.embed = lambda images: calls.append(len(images))
    np.testing.assert_array_equal(evaluation.real_features(run, real, extractor), first)
    assert calls == []


def test_evaluate_a_run_with_random_features_writes_json(trained_run):
    result = invoke("evaluate", "--ckpt", trained_run, "-n", 40, "--features", "random")
    assert result.exit_code == 0, result.output
    path = trained_run / "eval" / "step-0000006-random-convnet-64.json"
    assert f"wrote {path.name}" in result.output.replace(str(path.parent) + "/", "")
    saved = json.loads(path.read_text())
    assert saved["features"] == "random-convnet-64"
    assert saved["generated_images"] == 40 and saved["real_images"] == 64
    for key in ("fid", "kid", "kid_std", "precision", "recall", "copy_rate"):
        assert np.isfinite(saved[key]), key
    assert saved["fid"] > 0 and 0 <= saved["precision"] <= 1


def test_without_inception_weights_offline_it_says_what_to_download_and_where(trained_run):
    result = invoke("evaluate", "--ckpt", trained_run, "-n", 40, "--features", "inception")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert INCEPTION_URL_TAIL in result.output
    assert str(features.inception_weights_path()) in result.output
    assert "--inception-weights" in result.output


INCEPTION_URL_TAIL = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def test_by_default_offline_it_measures_in_the_random_network_and_says_so(trained_run):
    result = invoke("evaluate", "--ckpt", trained_run, "-n", 20, "--max-real", 20)
    assert result.exit_code == 0, result.output
    assert "in random-convnet-64, 20 generated against 20 real images" in result.output


def test_a_missing_or_foreign_weights_file_is_one_line(trained_run, tmp_path):
    result = invoke("evaluate", "--ckpt", trained_run, "--inception-weights", tmp_path / "no.h5")
    assert result.exit_code == 2 and "no such file" in result.output
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not hdf5")
    result = invoke("evaluate", "--ckpt", trained_run, "--inception-weights", foreign)
    assert result.exit_code == 2 and "not InceptionV3 no-top weights" in result.output


def test_an_exported_generator_alone_cannot_be_evaluated(trained_run):
    result = invoke("evaluate", "--ckpt", trained_run / "generator.keras", "--features", "random")
    assert result.exit_code == 2
    assert "needs a run directory or a checkpoint inside one" in result.output


@pytest.mark.slow
def test_inception_features_from_a_weights_file_in_keras_format(trained_run, tmp_path):
    # Random weights in the layout of Keras' published file (legacy HDF5, no top).
    model = keras.applications.InceptionV3(
        include_top=False, weights=None, pooling="avg", input_shape=(299, 299, 3)
    )
    from keras.src.legacy.saving import legacy_h5_format

    weights = tmp_path / features.INCEPTION_FILE
    with h5py.File(weights, "w") as stream:
        legacy_h5_format.save_weights_to_hdf5_group(stream, model)
    extractor = features.make_extractor("inception", weights)
    images = np.random.default_rng(3).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    rows = extractor.features(images)
    assert rows.shape == (3, 2048)
    # The same pipeline by hand: [-1, 1], grey to RGB, bilinear 299x299.
    x = np.repeat(images.astype(np.float32) / 127.5 - 1.0, 3, axis=-1)
    x = keras.ops.image.resize(x, (299, 299), interpolation="bilinear")
    np.testing.assert_allclose(rows, model(x, training=False), rtol=1e-4, atol=1e-5)

    result = invoke(
        "evaluate", "--ckpt", trained_run, "-n", 12, "--max-real", 12,
        "--inception-weights", weights,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((trained_run / "eval" / "step-0000006-inception_v3_pool.json").read_text())
    assert saved["features"] == "inception_v3_pool" and saved["real_images"] == 12


def test_loaded_generator_images_feed_evaluate(trained_run):
    generator = load_generator(trained_run)
    assert isinstance(generator, LoadedGenerator)
    images = evaluation.generated_images(generator, 10, batch_size=4)
    assert images.shape == (10, 16, 16, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, evaluation.generated_images(generator, 10, batch_size=7))
