"""--ckpt, whatever it names: a run folder (its newest checkpoint, else its final
generator.keras), a checkpoint folder inside a run, or an exported generator .keras file,
which is measured before Keras inflates it and checked to be a generator once loaded."""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keras

from dcgan.config import MAX_IMAGE_SIZE, MAX_LATENT_DIM, Config, load
from dcgan.errors import ConfigError, RunDirError, require_utf8, shorten
from dcgan.files.reading import GiB, MiB, UnsafeFile, check_zip, open_regular
from dcgan.models.loaded import LoadedGenerator
from dcgan.storage import checkpoints
from dcgan.storage.run_folder import RunDir

log = logging.getLogger(__name__)

MAX_KERAS_BYTES = 2 * GiB  # a .keras file inflated: a generator's weights are far below
MAX_KERAS_CONFIG_BYTES = 4 * MiB  # config.json and metadata.json, read whole into memory


def load_generator(path: Path) -> LoadedGenerator:
    require_utf8(path, "--ckpt")
    try:
        os.stat(path)
    except FileNotFoundError:
        raise RunDirError(f"--ckpt {path}: no such file or directory") from None
    except OSError as exc:  # a name too long, a loop of links, a folder without permission
        raise RunDirError(f"--ckpt {shorten(str(path), 200)}: {exc.strerror or exc}") from None
    if path.is_dir() and (path / "config.yaml").is_file():
        return _from_run(RunDir(path))
    if path.is_dir() and checkpoints.is_checkpoint(path):
        run = RunDir(path.parent.parent)
        if not run.config.is_file():
            raise RunDirError(
                f"--ckpt {path}: a checkpoint outside a run (no config.yaml in {run.root})"
            )
        return _from_checkpoint(run, path)
    if path.suffix == ".keras":  # a FIFO or a folder of that name: _load_keras_file says so
        return LoadedGenerator(_load_keras_file(path), str(path))
    raise RunDirError(
        f"--ckpt {path}: not a run directory, a checkpoint folder or a .keras generator file"
    )


def _from_run(run: RunDir) -> LoadedGenerator:
    """The newest checkpoint, else generator.keras; when the newest checkpoint is damaged,
    the next that loads (with a warning naming the ones passed by)."""
    found = [path for _, path in reversed(checkpoints.list_checkpoints(run.checkpoints))]
    if not found and not run.generator.exists():
        raise RunDirError(
            f"--ckpt {run.root}: this run has no checkpoint and no generator.keras yet"
        )
    failures: list[RunDirError] = []
    for path in _newest_first(run, found):
        try:
            loaded = (
                LoadedGenerator(
                    _load_keras_file(path), str(path), run, run_config(run).data.classes
                )
                if path == run.generator
                else _from_checkpoint(run, path)
            )
        except RunDirError as exc:
            failures.append(exc)
            continue
        except OSError as exc:  # gone meanwhile: a training rotated it away
            failures.append(RunDirError(f"{path}: {exc.strerror or exc}"))
            continue
        for failure in failures:
            log.warning("%s; passed by", failure)
        if failures:
            log.warning("using %s instead", path.name)
        return loaded
    raise failures[0]


def _newest_first(run: RunDir, found: list[Path]) -> Iterator[Path]:
    """The checkpoints by step, newest first, with generator.keras among them by its time
    (a finished run's is as new as its last checkpoint; one from before a resume is
    older than the checkpoints after it). Times are read only once the newest fails,
    and a file that went meanwhile (rotated by a training) is passed by."""
    yield from found[:1]
    generator_time = _modified(run.generator)
    placed = generator_time is None
    for path in found[1:]:
        if not placed and (_modified(path) or 0.0) < generator_time:
            placed = True
            yield run.generator
        yield path
    if not placed:
        yield run.generator


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _from_checkpoint(run: RunDir, path: Path) -> LoadedGenerator:
    from dcgan.models.networks import inference_generator, standing_statistics

    config = run_config(run)
    generator = inference_generator(config)
    if config.model.ema is not None:  # the moving average is what the run samples from
        weights = [w.value for w in generator.weights]
        checkpoints.restore_checkpoint({"ema_weights": weights}, path, partial=True)
        standing_statistics(generator)  # as training's samples and generator.keras have
    else:
        checkpoints.restore_checkpoint({"generator": generator}, path, partial=True)
    return LoadedGenerator(generator, str(path), run, config.data.classes)


def run_config(run: RunDir) -> Config:
    try:
        return load(run.config, check_data=False)
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None


def _load_keras_file(path: Path) -> keras.Model:
    """A .keras generator, measured before Keras inflates it (a zip bomb, a FIFO or a
    device are refused unread) and checked to map latents to images once loaded."""
    try:
        with open_regular(path, what="Keras file") as stream:
            is_zip = zipfile.is_zipfile(stream)
        if is_zip:
            check_zip(
                path,
                MAX_KERAS_BYTES,
                limits={
                    "config.json": MAX_KERAS_CONFIG_BYTES,
                    "metadata.json": MAX_KERAS_CONFIG_BYTES,
                },
            )
    except UnsafeFile as exc:
        raise RunDirError(f"--ckpt {exc}") from None
    if not is_zip:
        raise RunDirError(f"--ckpt {path}: not a loadable Keras generator: not a zip archive")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged zip, a foreign file, unsafe layers: all one message
        raise RunDirError(f"--ckpt {path}: not a loadable Keras generator: {_gist(exc)}") from None
    problem = _not_a_generator(model)
    if problem:
        raise RunDirError(
            f"--ckpt {path}: not a generator: {problem} (a generator maps latents "
            "(None, latent_dim), and for a conditional one class indices (None,), to images "
            "(None, H, W, C) with C 1 or 3)"
        )
    return model


def _not_a_generator(model: keras.Model) -> str | None:
    """Which way model is not a generator, or None."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        return "its inputs and outputs are unknown"
    if len(inputs) == 2:
        if tuple(inputs[1].shape) != (None,) or "int" not in str(inputs[1].dtype):
            return f"its second input is {_shape(tuple(inputs[1].shape))}, not class indices"
        if "class_one_hot" not in {layer.name for layer in model.layers}:
            return "it has two inputs but no class_one_hot layer"
    elif len(inputs) != 1:
        return f"it has {len(inputs)} inputs"
    if len(outputs) != 1:
        return f"it has {len(outputs)} outputs"
    latent, image = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(latent) != 2 or latent[1] is None:
        return f"its input is {_shape(latent)}, not latents"
    if not 0 < latent[1] <= MAX_LATENT_DIM:
        return f"its latents have {latent[1]} values, over the {MAX_LATENT_DIM} allowed"
    if len(image) != 4 or image[1] is None or image[2] is None:
        return f"its output is {_shape(image)}, not images"
    if image[3] not in (1, 3):
        return f"its images have {image[3]} channels, not 1 or 3"
    if max(image[1], image[2]) > MAX_IMAGE_SIZE:
        return f"its images are {image[1]}x{image[2]}, over the {MAX_IMAGE_SIZE} allowed"
    return None


def _shape(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _gist(exc: Exception, limit: int = 200) -> str:
    """The first sentences of an error message, cut at a sentence end near limit."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= limit:
        return text
    end = text.rfind(". ", 0, limit)
    return text[: end + 1] if end > 0 else text[:limit] + "..."
