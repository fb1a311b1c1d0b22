"""onnxruntime-web, the browser runtime of `export --format web`: one pinned npm release,
checked against the registry's published sha512 before any of it is used, fetched once
into a cache (or given as the .tgz `npm pack onnxruntime-web@VERSION` writes).

    python -m dcgan.web.runtime   # fetch it into the cache now (set-up, CI)
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dcgan.data.sources import keras_cache_dir
from dcgan.errors import DcganError, printable
from dcgan.files import writing
from dcgan.files.reading import MiB, UnsafeFile, read_bytes, size_text

VERSION = "1.30.0"
LICENSE = "MIT"
URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{VERSION}.tgz"
# The registry's dist.integrity for this release (`npm view onnxruntime-web@1.30.0 dist`).
INTEGRITY = (
    "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+"
    "CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
)
MAX_ARCHIVE = 64 * MiB  # the release is 33 MB
# What the page needs: the JavaScript API with the WebAssembly back end (a classic script,
# so the page also works opened from disk), the module that starts WebAssembly, and the
# single-threaded-capable SIMD binary.
API, LOADER, BINARY = "ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"


@dataclass(frozen=True)
class Runtime:
    api: bytes
    loader: bytes
    binary: bytes
    source: str  # where it came from, for the licence file


def cached_archive() -> Path:
    return keras_cache_dir().parent / "onnxruntime-web" / f"onnxruntime-web-{VERSION}.tgz"


def load_runtime(archive: Path | None = None, download: bool = True) -> Runtime:
    """The runtime from archive (--runtime), else the cache, else a download into the cache
    (unless download is False or DCGAN_OFFLINE is set): one line naming the file otherwise."""
    path = archive or cached_archive()
    if archive is None and not path.is_file():
        if not download or os.environ.get("DCGAN_OFFLINE"):
            raise DcganError(
                f"--format web needs onnxruntime-web {VERSION}, which is not at {path}: run "
                f"`python -m dcgan.web.runtime` once with the network, or give "
                f"--runtime FILE (the .tgz of `npm pack onnxruntime-web@{VERSION}`)"
            )
        fetch(path)
    option = "--runtime " if archive is not None else ""
    try:
        data = read_bytes(path, MAX_ARCHIVE, "onnxruntime-web archive")
    except UnsafeFile as exc:
        raise DcganError(f"{option}{exc}") from None
    if not matches(data):
        raise DcganError(
            f"{option}{printable(path)}: not onnxruntime-web {VERSION} as published on npm "
            "(its sha512 differs); delete it and fetch it again"
        )
    files = _members(data)
    return Runtime(files[API], files[LOADER], files[BINARY], f"{URL} ({INTEGRITY})")


def matches(data: bytes) -> bool:
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    return f"sha512-{digest}" == INTEGRITY


def _members(data: bytes) -> dict[str, bytes]:
    """The three files, read from the (already verified) archive in memory."""
    wanted = {f"package/dist/{name}": name for name in (API, LOADER, BINARY)}
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                found[wanted[member.name]] = tar.extractfile(member).read()
    return found


def fetch(path: Path) -> Path:
    """Download the release into path, kept only when its sha512 matches."""
    print(f"dcgan: fetching onnxruntime-web {VERSION} ({LICENSE} licence) from npm into "
          f"{path}, once", file=sys.stderr)  # fmt: skip
    try:
        with urllib.request.urlopen(URL, timeout=120) as response:
            data = response.read(MAX_ARCHIVE + 1)
    except OSError as exc:
        raise DcganError(
            f"could not download onnxruntime-web {VERSION} from {URL}: {exc}; fetch it with "
            f"`npm pack onnxruntime-web@{VERSION}` and give --runtime FILE"
        ) from None
    if not matches(data):
        raise DcganError(f"{URL}: the download is not the published release (sha512 differs)")
    with writing.atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    print(f"dcgan: {size_text(len(data))} checked against the published sha512",
          file=sys.stderr)  # fmt: skip
    return path


if __name__ == "__main__":
    target = cached_archive()
    if target.is_file():
        print(f"onnxruntime-web {VERSION} is already at {target}")
    else:
        fetch(target)
