"""`export --format web`: a folder with one index.html that samples the generator in the
browser. The ONNX file is checked as `--format onnx` checks it; the page and the runtime
are classic scripts (the model and the WebAssembly binary as base64 inside them), because
a page opened from disk may load scripts but may not fetch files."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

from dcgan.files import writing
from dcgan.generation import portable
from dcgan.generation.portable import Agreement
from dcgan.models.loaded import LoadedGenerator
from dcgan.web.runtime import LICENSE, VERSION, Runtime, load_runtime

PAGE_FILES = ("index.html", "app.js", "numpy-random.js")
MODEL_FILE = "generator.onnx"
RUNTIME_FOLDER = "onnxruntime-web"
MIT_TEXT = """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def export_web_page(
    generator: LoadedGenerator, out: Path, force: bool, archive: Path | None
) -> Agreement:
    """`export --format web`: everything checked (the extra, --out, the runtime archive)
    before anything is written."""
    portable.require_extra("web")
    writing.refuse_existing([out], force)
    runtime = load_runtime(archive)
    writing.make_folder(out.parent)
    return write_web_page(generator, runtime, out)


def write_web_page(generator: LoadedGenerator, runtime: Runtime, out: Path) -> Agreement:
    """The folder at out (complete or not at all); the ONNX check's agreement."""
    with writing.atomic_dir(out) as staging:
        agreement = portable.write_portable(generator, "onnx", staging / MODEL_FILE)
        model = (staging / MODEL_FILE).read_bytes()
        described = describe(generator, model)
        _script(staging / f"{MODEL_FILE}.js", "DCGAN_GENERATOR", described)
        assets = resources.files("dcgan.web") / "assets"
        for name in PAGE_FILES:
            (staging / name).write_bytes((assets / name).read_bytes())
        folder = staging / RUNTIME_FOLDER
        folder.mkdir()
        (folder / "ort.wasm.min.js").write_bytes(runtime.api)
        _script(folder / "ort-wasm-loader.js", "ORT_WASM_LOADER", runtime.loader.decode("utf-8"))
        _script(folder / "ort-wasm-binary.js", "ORT_WASM_BINARY", _base64(runtime.binary))
        (folder / "LICENSE.txt").write_text(
            f"onnxruntime-web {VERSION}, {LICENSE} licence, from {runtime.source}.\n"
            "ort-wasm-loader.js and ort-wasm-binary.js hold its ort-wasm-simd-threaded.mjs "
            "and .wasm as JavaScript strings.\n\nCopyright (c) Microsoft Corporation.\n\n"
            + MIT_TEXT
        )
    return agreement


def describe(generator: LoadedGenerator, model: bytes) -> dict:
    """What the page needs to know of the generator, with the ONNX file as base64."""
    height, width, channels = generator.image_shape
    loaded = Path(generator.source)  # only names: a shared page should not show local paths
    name = generator.run.root.name if generator.run is not None else loaded.stem
    return {
        "name": name,
        "source": f"{name}/{loaded.name}" if generator.run is not None else loaded.name,
        "latentDim": generator.latent_dim,
        "height": height,
        "width": width,
        "channels": channels,
        "classes": generator.classes,
        "classInputType": _class_input_type(model) if generator.conditional else None,
        "onnxBase64": _base64(model),
    }


def _class_input_type(model: bytes) -> str:
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return "int64" if "int64" in session.get_inputs()[1].type else "int32"


def _script(path: Path, name: str, value) -> None:
    """A classic script that sets window[name] to value (JSON: a string or an object)."""
    path.write_text(f"window.{name} = {json.dumps(value)};\n", encoding="utf-8")


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
