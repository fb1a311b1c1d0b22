"""TensorFlow's runtime, as the package uses it. Imported quietly: its C++ start-up chatter
(oneDNN notices, CUDA probing on machines without a GPU) is printed before any log level
applies, so it is captured during import and device discovery and shown only if that
fails; DCGAN_TF_CHATTER=1 shows it. And graphs compiled one way (`compiled`)."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager, nullcontext


@contextmanager
def _stderr_captured():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """TensorFlow with Keras set to use it; call before anything imports either."""
    quiet = not os.environ.get("DCGAN_TF_CHATTER")
    # 3: not even C++ "errors", which during training are optimiser passes that failed and
    # fell back (grappler's "remapper failed ... LeakyReluGrad"); real failures raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if quiet else "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_captured() if quiet else nullcontext():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe prints here
    if quiet:
        # Python-side warnings such as "a Checkpoint is being deleted with unrestored
        # values" when a resume stops on a bad file after the restore: noise beside the
        # one line that says what is wrong.
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return tf


def compiled(function):
    """`function` as one TensorFlow graph, retraced as seldom as its input shapes allow,
    and traced without autograph: a function first traced late in a run (a render, a
    metric, a score) would have autograph re-read its source file, which an update of an
    editable install may have changed under the running process (it once converted the
    wrong function and crashed a training at its first checkpoint). So Python `if` and
    `for` here run once, at trace time; control flow on tensors is tf.cond."""
    tf = import_tensorflow()
    return tf.function(function, reduce_retracing=True, autograph=False)
