"""Latents in .npy files: read for `--z FILE` (float32 (N, latent_dim), finite, never a
pickle, bounded in size before anything is read), and written by `sample --save-z` as the
images are made, one batch at a time, so that any count fits in memory."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from dcgan.errors import DcganError, printable, shorten
from dcgan.files import writing
from dcgan.files.reading import MiB, UnsafeFile, open_regular

MAX_LATENT_FILE = 1024 * MiB  # 2.6 million latents of 100 float32 values


def read_latents(path: Path, latent_dim: int, option: str = "--z") -> np.ndarray:
    """The latents in path: float32 (N, latent_dim), N >= 1, every value finite."""
    where = f"{option} {printable(str(path))}"
    try:
        with open_regular(path, MAX_LATENT_FILE, "latent file") as stream:
            shape, dtype = _header(stream, where)
            _check(where, shape, dtype, latent_dim)
            latents = _body(stream, shape, where)
    except UnsafeFile as exc:
        raise DcganError(f"{option} {printable(str(exc))}") from None
    if not np.isfinite(latents).all():
        bad = np.argwhere(~np.isfinite(latents))[0]
        raise DcganError(
            f"{where}: row {bad[0]} holds {latents[bad[0], bad[1]]}: latents must be finite"
        )
    return latents


def _header(stream: BinaryIO, where: str) -> tuple[tuple, np.dtype]:
    """The .npy header's shape and dtype, read before any value is."""
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except ValueError as exc:
        raise DcganError(
            f"{where}: not a .npy file of latents ({shorten(str(exc) or 'bad header')}); save "
            "them with numpy.save(path, z.astype(numpy.float32))"
        ) from None
    if dtype.hasobject:
        raise DcganError(
            f"{where}: holds Python objects, which would have to be unpickled: dcgan never "
            "loads a pickle; save float32 latents with numpy.save"
        )
    if fortran:
        raise DcganError(f"{where}: a Fortran-ordered array; save it with numpy.save(path, z)")
    return shape, dtype


def _check(where: str, shape: tuple, dtype: np.dtype, latent_dim: int) -> None:
    if dtype != np.dtype("<f4") and dtype != np.dtype("=f4"):
        raise DcganError(
            f"{where}: holds {dtype.name} values; latents are float32 "
            "(numpy.save(path, z.astype(numpy.float32)))"
        )
    if len(shape) != 2 or shape[1] != latent_dim or shape[0] < 1:
        raise DcganError(
            f"{where}: has shape {shape}; this generator takes latents of shape "
            f"(N, {latent_dim}) with N at least 1"
        )


def _body(stream: BinaryIO, shape: tuple, where: str) -> np.ndarray:
    count = int(np.prod(shape))
    data = stream.read(4 * count)
    if len(data) != 4 * count:
        raise DcganError(f"{where}: truncated: its header declares {shape} float32 values")
    return np.frombuffer(data, np.float32).reshape(shape).copy()


class LatentWriter:
    """A float32 (count, latent_dim) .npy written batch by batch: the header first, the
    rows as they come, renamed into place only when every row is there."""

    def __init__(self, path: Path, count: int, latent_dim: int):
        self.path, self.expected, self.written = path, (count, latent_dim), 0
        self._atomic = writing.atomic_path(path)
        self._stream = open(self._atomic.__enter__(), "wb")  # noqa: SIM115 - closed in close()
        header = {"descr": "<f4", "fortran_order": False, "shape": self.expected}
        npy_format.write_array_header_1_0(self._stream, header)

    def add(self, latents: np.ndarray) -> None:
        self._stream.write(np.ascontiguousarray(latents, "<f4").tobytes())
        self.written += len(latents)

    def close(self, failed: BaseException | None = None) -> None:
        """Put the file in place; or, when failed (the caller's error, which it raises) or
        short of rows (raised here), remove it."""
        self._stream.close()
        short = None
        if failed is None and self.written != self.expected[0]:
            failed = short = DcganError(
                f"{self.path}: {self.written} of {self.expected[0]} rows written"
            )
        if failed is None:
            self._atomic.__exit__(None, None, None)
            return
        self._atomic.__exit__(type(failed), failed, failed.__traceback__)
        if short is not None:
            raise short
