"""The generator alone, for serving elsewhere."""

from __future__ import annotations

from pathlib import Path

from dcgan.errors import DcganError
from dcgan.files import writing
from dcgan.models.loaded import LoadedGenerator


def export_generator(generator: LoadedGenerator, fmt: str, out: Path, force: bool) -> Path:
    """The generator alone: a .keras file, or a TensorFlow SavedModel folder whose `serve`
    signature maps latents to images in [-1, 1]."""
    if fmt == "keras" and out.suffix != ".keras":
        raise DcganError(f"--out {out}: a Keras export must end in .keras")
    writing.refuse_existing([out], force)
    writing.make_folder(out.parent)
    if fmt == "keras":
        with writing.atomic_path(out) as tmp:
            generator.model.save(tmp)
        return out
    with writing.atomic_dir(out) as staging:
        generator.model.export(str(staging), format="tf_saved_model", verbose=False)
    return out
