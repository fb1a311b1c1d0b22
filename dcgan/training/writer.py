"""The background writer: training hands it file work (PNG encoding, the loss plot,
metrics.csv, TensorBoard), one thread does it in order, and the training thread goes on.

The queue is bounded, so a writer that falls behind slows training instead of holding
every pending image in memory. The first error a job raises stops the writing and comes
back on the training thread, at its next submit(), flush() or close(): a file that could
not be written as one line (OutputError), anything else (a bug) as itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import tensorflow as tf

from dcgan.errors import DcganError, OutputError
from dcgan.storage.checkpoints import tf_error_reason

Job = Callable[[], None]


class BackgroundWriter:
    def __init__(self, max_pending: int = 16, name: str = "dcgan-writer"):
        if max_pending <= 0:
            raise ValueError(f"BackgroundWriter: max_pending must be positive, got {max_pending}")
        self._jobs: queue.Queue[Job | None] = queue.Queue(max_pending)
        self._failure: BaseException | None = None
        self._failed = False  # stays set once reported: later jobs are skipped
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue job (blocking while max_pending jobs wait); first raise an earlier failure."""
        self.raise_failure()
        if self._closed:
            raise RuntimeError("BackgroundWriter: submit() after close()")
        self._jobs.put(job)

    def flush(self) -> None:
        """Wait until every queued job has run; raise the first failure among them."""
        self._jobs.join()
        self.raise_failure()

    def close(self) -> None:
        """Run what is queued, stop the thread and raise the first failure, if any."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        # Joined on every call: a Ctrl-C during the first join must not leave a job cut off.
        self._thread.join()
        self.raise_failure()

    @property
    def failed(self) -> bool:
        """A job has failed: the jobs queued after it were skipped."""
        return self._failed

    def raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is None:
            return
        if isinstance(failure, DcganError):
            raise failure
        if isinstance(failure, OSError):
            where = failure.filename or "a file of the run"
            raise OutputError(f"{where}: cannot write: {failure.strerror or failure}")
        if isinstance(failure, tf.errors.OpError):  # TensorBoard's writes
            reason = tf_error_reason(failure.message)
            raise OutputError(f"TensorBoard logs: cannot write: {reason[:200]}")
        raise failure  # a bug, not bad input: its traceback is the useful part

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if not self._failed:
                    job()
            except BaseException as exc:  # handed to the training thread
                self._failure, self._failed = exc, True
            finally:
                self._jobs.task_done()
