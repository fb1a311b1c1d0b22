"""The generator alone, for serving elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.files import writing
from dcgan.generation import portable
from dcgan.generation.portable import Agreement
from dcgan.models.loaded import LoadedGenerator

FILE_NAMES = {
    "keras": "generator.keras",
    "savedmodel": "generator_savedmodel",
    "onnx": "generator.onnx",
    "tflite": "generator.tflite",
    "web": "web",
}


def export_generator(
    generator: LoadedGenerator, fmt: str, out: Path, force: bool
) -> tuple[Path, Agreement | None]:
    """The generator alone: a .keras file, a TensorFlow SavedModel folder whose `serve`
    signature maps latents to images in [-1, 1], or an ONNX or TFLite file checked on its
    own runtime (the Agreement says how closely). The web page: dcgan.web.page."""
    if fmt == "keras" and out.suffix != ".keras":
        raise DcganError(f"--out {out}: a Keras export must end in .keras")
    if fmt in portable.EXTRA_PACKAGES:
        portable.require_extra(fmt)
    writing.refuse_existing([out], force)
    writing.make_folder(out.parent)
    if fmt in ("onnx", "tflite"):
        return out, portable.write_portable(generator, fmt, out)
    if fmt == "keras":
        with writing.atomic_path(out) as tmp:
            generator.model.save(tmp)
        return out, None
    with writing.atomic_dir(out) as staging:
        generator.model.export(str(staging), format="tf_saved_model", verbose=False)
    return out, None


def written_size(path: Path) -> int:
    """Bytes of an exported file, or of every file in an exported folder (links not
    followed)."""
    if not path.is_dir():
        return path.stat().st_size
    return sum(
        (Path(root) / name).lstat().st_size for root, _, names in os.walk(path) for name in names
    )
