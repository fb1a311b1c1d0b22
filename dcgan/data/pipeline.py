"""Training images -> an endless tf.data pipeline of float batches in [-1, 1].

The order is a pure function of (seed, step): epoch e is a stateless shuffle keyed by
(seed, e), and the stream is cut into batches without regard to epoch ends. So a run
resumed at step k is handed exactly the batches an unbroken run sees from step k on,
without saving an iterator (whose shuffle buffer would hold a copy of the data set).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MAP_THREADS = 2
PREFETCH_BATCHES = 4


def make_dataset(
    images: np.ndarray | tf.Variable,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    labels: np.ndarray | tf.Variable | None = None,
) -> tf.data.Dataset:
    """The batches for steps start_step + 1, start_step + 2, ...: gather, scale, prefetch;
    with labels (a conditional run), (images, int32 classes) batches.

    images are the decoded uint8 array from sources.load_images: decoding happened once and
    that array is the in-memory cache, a quarter of the size a float32 cache would be. The
    gather and the scaling run on whole batches, so they cost a few ops per step, not per
    image.
    """
    pixels = images if isinstance(images, tf.Variable) else pixel_store(images)
    if labels is not None and not isinstance(labels, tf.Variable):
        labels = pixel_store(labels)
    count = int(pixels.shape[0])
    first_epoch, offset = divmod(start_step * batch_size, count)

    def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), key)
        return tf.data.Dataset.from_tensor_slices(order)

    indices = tf.data.Dataset.counter(first_epoch).flat_map(epoch_order).skip(offset)

    def gather(batch: tf.Tensor):
        scaled = tf.cast(tf.gather(pixels, batch), tf.float32) / 127.5 - 1.0
        return scaled if labels is None else (scaled, tf.gather(labels, batch))

    dataset = indices.batch(batch_size, drop_remainder=True).map(
        gather, num_parallel_calls=MAP_THREADS
    )
    options = tf.data.Options()
    options.deterministic = True
    # Fixed sizes instead of AUTOTUNE: a batch is one gather, so a few threads and batches
    # ahead keep up with any step, and with the autotuner running, deleting the iterator
    # at the end of fit() waited for it for up to a minute (seen on 2,000+ step runs).
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(PREFETCH_BATCHES)


def pixel_store(array: np.ndarray) -> tf.Variable:
    """The images (or labels) in a CPU variable: tf.data would copy a captured 1 GB tensor
    again."""
    with tf.device("/CPU:0"):
        return tf.Variable(array, trainable=False, name="training_data")


def make_distributed_dataset(
    images: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int,
    strategy: tf.distribute.Strategy,
    labels: np.ndarray | None = None,
):
    """make_dataset's global batches split across the strategy's replicas: each worker
    builds the same stream and keeps its own rows of every batch, one slice per local
    replica, so that the replicas together train on exactly the single-device batch."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return make_dataset(images, batch_size, seed, start_step, labels)
    # Outside the strategy's scope: one copy, not one per replica.
    pixels = pixel_store(images)
    classes = None if labels is None else pixel_store(labels)

    def for_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        per_replica = context.get_per_replica_batch_size(batch_size)
        first = context.input_pipeline_id * local * per_replica

        def own_rows(part: tf.Tensor) -> tf.Tensor:
            rows = part[first : first + local * per_replica]
            return tf.reshape(rows, [local, per_replica, *part.shape[1:]])

        def own_part(*batch):  # images, or images and their classes
            parts = tuple(map(own_rows, batch))
            return parts if len(parts) > 1 else parts[0]

        return (
            make_dataset(pixels, batch_size, seed, start_step, classes)
            .map(own_part)
            .unbatch()  # consecutive elements go to the worker's replicas in turn
        )

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(for_worker, options)
