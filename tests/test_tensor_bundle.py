"""Reading a TensorFlow checkpoint's index without TensorFlow: the bytes its data files
must hold, and a damaged index, data file or shard told as one reason, never an error."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dcgan.storage.checkpoints import checkpoint_damage
from dcgan.storage.tensor_bundle import BundleError, shard_extents


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint as TensorFlow writes it: 1,000 float32s, an int32 and a float64."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("checkpoint")
    values = {
        "big": tf.Variable(np.arange(1000, dtype=np.float32)),
        "small": tf.Variable(3),
        "wide": tf.Variable(np.ones((2, 3), np.float64)),
    }
    tf.train.Checkpoint(**values).write(str(folder / "ckpt"))
    return folder


def copy_of(checkpoint, tmp_path):
    for name in os.listdir(checkpoint):
        (tmp_path / name).write_bytes((checkpoint / name).read_bytes())
    return tmp_path


def test_the_data_file_must_hold_every_tensor_the_index_names(checkpoint):
    shards, ends = shard_extents(checkpoint / "ckpt.index")
    data = checkpoint / "ckpt.data-00000-of-00001"
    # One shard, and its last tensor ends where TensorFlow's file ends. It holds the
    # 4,000 + 4 + 48 bytes of the three values and the object graph besides.
    assert (shards, ends) == (1, {0: data.stat().st_size})
    assert data.stat().st_size > 4000 + 4 + 48
    assert checkpoint_damage(checkpoint) is None


def test_a_data_file_cut_short_missing_or_not_a_file_is_named(checkpoint, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    data = folder / "ckpt.data-00000-of-00001"
    whole = data.stat().st_size
    data.write_bytes(data.read_bytes()[:-1])
    assert checkpoint_damage(folder) == (
        f"ckpt.data-00000-of-00001 is cut short: {whole - 1:,} of its {whole:,} bytes"
    )
    data.unlink()
    assert checkpoint_damage(folder) == "ckpt.data-00000-of-00001 is missing"
    os.mkfifo(data)
    said = checkpoint_damage(folder)
    assert said == "ckpt.data-00000-of-00001 is a FIFO (named pipe), not a file"


def test_every_cut_and_changed_byte_of_the_index_is_a_reason_or_nothing(checkpoint, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    index = folder / "ckpt.index"
    table = (checkpoint / "ckpt.index").read_bytes()
    for length in range(len(table)):  # every cut: the footer goes, so each is told
        index.write_bytes(table[:length])
        assert checkpoint_damage(folder).startswith("its index is damaged ("), length
    # A changed byte may still parse, but never raises: every other value of every byte
    # (a tag changed into another field's can turn a number into a length-delimited field).
    for position in range(len(table)):
        for flip in range(1, 256):
            changed = bytearray(table)
            changed[position] ^= flip
            index.write_bytes(bytes(changed))
            said = checkpoint_damage(folder)
            assert said is None or isinstance(said, str), (position, flip)
    index.write_bytes(os.urandom(4096))
    assert checkpoint_damage(folder).startswith("its index is damaged (")


def test_what_a_tensorflow_index_never_holds_is_refused(tmp_path):
    index = tmp_path / "ckpt.index"
    index.write_bytes(b"\0" * 40 + (0xDB4775248B80FB57).to_bytes(8, "little"))
    with pytest.raises(BundleError, match="a block outside the file|too short"):
        shard_extents(index)
    index.write_bytes(b"x" * 100)
    with pytest.raises(BundleError, match="no table magic number"):
        shard_extents(index)
