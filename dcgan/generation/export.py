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
    generator: LoadedGenerator, fmt: str, out: Path, force: bool, runtime: Path | None = None
) -> tuple[Path, Agreement | None]:
    """The generator alone: a .keras file, a TensorFlow SavedModel folder whose `serve`
    signature maps latents to images in [-1, 1], an ONNX or TFLite file checked on its own
    runtime (the Agreement says how closely), or a web page folder around the ONNX file
    (runtime: onnxruntime-web's .tgz, else the cached one)."""
    if fmt == "keras" and out.suffix != ".keras":
        raise DcganError(f"--out {out}: a Keras export must end in .keras")
    if fmt in portable.EXTRA_PACKAGES:
        portable.require_extra(fmt)
    writing.refuse_existing([out], force)
    if fmt == "web":
        from dcgan.web.page import write_web_page
        from dcgan.web.runtime import load_runtime

        files = load_runtime(runtime)  # before anything is written
        writing.make_folder(out.parent)
        return out, write_web_page(generator, files, out)
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
