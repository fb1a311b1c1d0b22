"""The generator in files other programs run: ONNX (onnxruntime in Python, C++, C#, Java
and the browser) and TensorFlow Lite (phones and small boards). Both come from Keras' own
exporters (tf2onnx and the TFLite converter underneath), and each file is run on its own
runtime before it is kept: it must give the Keras generator's images within TOLERANCE."""

from __future__ import annotations

import importlib
import shlex
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan.errors import DcganError
from dcgan.files import writing
from dcgan.models.latents import balanced_classes, latent_stream
from dcgan.models.loaded import LoadedGenerator


def install_extra(missing: list[str]) -> str:
    """The command that installs what is missing into the Python running dcgan: the
    checkout's export extra where it runs from one (kept editable), else the packages by
    name (PyPI's "dcgan" is another project); with this interpreter's pip, as a bare pip
    may belong to another Python."""
    checkout = Path(__file__).resolve().parents[2]
    target = (
        f"-e {shlex.quote(f'{checkout}[export]')}"
        if (checkout / "pyproject.toml").is_file()
        else " ".join(map(shlex.quote, missing))
    )
    return f"{shlex.quote(sys.executable)} -m pip install {target}"


# Largest |difference| allowed between the file's images and Keras' (pixels in [-1, 1]; a
# grey level is 2/255 = 0.0078): float32 throughout, so only the order of operations differs.
TOLERANCE = {"onnx": 1e-4, "tflite": 1e-4}
CHECK_LATENTS = 16  # latents of seed 0 the check draws (every class, for a conditional G)
_ONNX = (("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"))
EXTRA_PACKAGES = {  # format: (what it needs, the module that says it is there)
    "onnx": _ONNX,
    "tflite": (("ai-edge-litert", "ai_edge_litert.interpreter"),),
    "web": _ONNX,  # the page runs the ONNX file
}
RUNTIME_NAMES = {"onnx": "onnxruntime", "tflite": "the LiteRT interpreter"}


class ExportMismatch(DcganError):
    """The exported file does not give the generator's images: nothing was written."""

    exit_code = 1


@dataclass(frozen=True)
class Agreement:
    runtime: str
    max_difference: float
    tolerance: float


def require_extra(fmt: str) -> None:
    """Before any work: the packages the format's converter and check need, or one line
    that says which extra installs them."""
    missing = []
    for package, module in EXTRA_PACKAGES[fmt]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        needed = ", ".join(missing)
        raise DcganError(
            f"--format {fmt} needs {needed}, which {verb} not installed: {install_extra(missing)}"
        )


def check_inputs(generator: LoadedGenerator) -> list[np.ndarray]:
    """The inputs the check feeds both sides: z of seed 0, and classes 0, 1, ... in turn."""
    z = next(latent_stream(0, CHECK_LATENTS, generator.latent_dim, CHECK_LATENTS))
    if not generator.conditional:
        return [z]
    return [z, balanced_classes(CHECK_LATENTS, len(generator.classes))]


def write_portable(generator: LoadedGenerator, fmt: str, out: Path) -> Agreement:
    """Convert the generator to fmt at out and check it; a file that disagrees is not
    kept (out stays as it was) and is an ExportMismatch."""
    inputs = check_inputs(generator)
    # Keras exports only a model that has been called; the call is also the reference.
    expected = np.asarray(generator.model(inputs if len(inputs) > 1 else inputs[0]))
    keras_format, run = {"onnx": ("onnx", _run_onnx), "tflite": ("litert", _run_tflite)}[fmt]
    with writing.atomic_path(out) as tmp:
        with warnings.catch_warnings():  # tf2onnx's notes on numpy are not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            generator.model.export(tmp, format=keras_format, verbose=False)
        got = run(tmp, generator, inputs)
        agreement = Agreement(
            RUNTIME_NAMES[fmt], float(np.abs(got - expected).max()), TOLERANCE[fmt]
        )
        if not agreement.max_difference <= agreement.tolerance:  # NaN fails too
            raise ExportMismatch(
                f"--format {fmt}: {agreement.runtime} draws images up to "
                f"{agreement.max_difference:.3g} away from the Keras generator's (tolerance "
                f"{agreement.tolerance:g}); nothing was written"
            )
    return agreement


def _input_names(generator: LoadedGenerator) -> list[str]:
    return [tensor.name.split(":")[0] for tensor in generator.model.inputs]


def _run_onnx(path: str, generator: LoadedGenerator, inputs: list[np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {}
    for spec, value in zip(session.get_inputs(), inputs, strict=True):
        feeds[spec.name] = value.astype(np.int64) if "int64" in spec.type else value
    return session.run(None, feeds)[0]


def _run_tflite(path: str, generator: LoadedGenerator, inputs: list[np.ndarray]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    runner: Callable = interpreter.get_signature_runner()
    result = runner(**dict(zip(_input_names(generator), inputs, strict=True)))
    return next(iter(result.values()))
