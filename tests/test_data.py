"""The tf.data pipeline: batches of the right shape, values in [-1, 1], every image seen."""

from __future__ import annotations

import numpy as np

from dcgan.runtime import import_tensorflow

import_tensorflow()

from dcgan.data.pipeline import make_dataset  # noqa: E402


def test_batches_are_scaled_shuffled_and_repeat():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 25  # 0, 25, ..., 225
    images = np.broadcast_to(images, (10, 2, 2, 1)).copy()
    batches = list(make_dataset(images, batch_size=4, seed=3).take(5).as_numpy_iterator())
    assert all(batch.shape == (4, 2, 2, 1) and batch.dtype == np.float32 for batch in batches)
    values = np.concatenate([batch[:, 0, 0, 0] for batch in batches])
    assert values.min() >= -1.0 and values.max() <= 1.0
    assert set(np.round((values[:10] + 1) * 127.5).astype(int)) == set(range(0, 226, 25))
    assert not np.array_equal(values[:10], np.sort(values[:10]))  # shuffled


def test_endpoints_of_the_scale():
    images = np.array([0, 255], np.uint8).reshape(2, 1, 1, 1)
    (batch,) = make_dataset(images, batch_size=2, seed=0).take(1).as_numpy_iterator()
    assert sorted(batch.ravel().tolist()) == [-1.0, 1.0]


def test_batch_larger_than_the_data_set_still_fills():
    images = np.zeros((3, 2, 2, 1), np.uint8)
    (batch,) = make_dataset(images, batch_size=8, seed=0).take(1).as_numpy_iterator()
    assert batch.shape == (8, 2, 2, 1)
