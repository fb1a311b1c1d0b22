"""Settings for a folder of images, for `dcgan train --data PATH`: no YAML needed.

A survey reads the headers of a spread of the folder's images (never every pixel of every
file) and the preset turns what it found into config keys: the size from the images' own
short side and aspect, gray or colour, crop or pad, and the small-data tools when the folder
is small. Every choice comes with the reason, which training prints and the user can
override with --set or by editing the run's config.yaml.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan.config import MAX_CLASSES, base_and_depth, class_name
from dcgan.data.classes import folder_classes
from dcgan.data.sources import IMAGE_SUFFIXES, MAX_IMAGE_FILE, MIN_IMAGES, list_image_files
from dcgan.errors import DataError, printable, shorten
from dcgan.files.reading import UnsafeFile, open_regular

SURVEYED = 400  # headers read, spread evenly over the folder
COLOUR_CHECKED = 24  # images decoded (as thumbnails) to tell gray photos saved as RGB
SIZES = (32, 48, 64, 96, 128)  # the short sides the preset picks from
SQUARE_ENOUGH = 1.25  # a median aspect within 1/1.25..1.25 trains square
MAX_ASPECT = 4.0
SMALL_DATA = 2000  # fewer gray images than this: DiffAugment and EMA (README's evidence)
SMALL_COLOUR = 10_000  # fewer colour images than this: COLOUR_SETTINGS
FEW_IMAGES = 500  # fewer than this: a caution that G will learn to copy them
# What README's ablation on 3,781 emoji (2,000 steps, batch 64) found worth having: resize
# upsampling, ADA, twice the paper's learning rates, a moving average of G over about
# 200 steps that smooths what the higher rates shake, and R1 at gamma 1 (row 14: 86% lower
# Fréchet than the roses settings from seed 0, 87% from seed 1). x-flip helped there once
# and hurt once (it assumes mirror images are as likely: not for text or logos); spectral
# norm with hinge changed nothing: options, not the preset.
COLOUR_SETTINGS = {
    "model": {"upsample": "resize", "ema": 0.995},
    "train": {"augment": "ada", "ada_kimg": 100, "g_lr": 4e-4, "d_lr": 4e-4, "r1_gamma": 1.0},
}


@dataclass(frozen=True)
class Survey:
    folder: Path
    count: int  # image files found (readable or not)
    aspects: list[float]  # width / height of each surveyed image that opened
    short_sides: list[int]
    gray: bool
    classes: list[str]  # the sub-folders a conditional run would take as classes, or []
    unreadable: list[str]  # "name: why" of each surveyed file that does not open as a picture


def survey_folder(folder: Path) -> Survey:
    """What the images in folder are like, from a spread of at most SURVEYED of them."""
    if not folder.exists():
        raise DataError(f"--data {printable(folder)}: no such folder")
    if not folder.is_dir():
        raise DataError(f"--data {printable(folder)}: not a folder (give the folder of images)")
    files = list_image_files(folder)
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(
            f"--data {printable(folder)}: no image files ({suffixes}) in this folder or below"
        )
    spread = files[:: max(1, len(files) // SURVEYED)][:SURVEYED]
    aspects, short_sides, modes, unreadable = [], [], [], []
    for path in spread:
        header = _header(path)
        if isinstance(header, str):
            unreadable.append(f"{printable(path.relative_to(folder))}: {header}")
        else:
            (width, height), mode = header
            aspects.append(width / height)
            short_sides.append(min(width, height))
            modes.append((path, mode))
    if len(aspects) < min(MIN_IMAGES, len(spread)) or not aspects:
        raise DataError(
            f"--data {printable(folder)}: {len(spread) - len(aspects)} of the {len(spread)} "
            "images looked at cannot be opened as pictures"
        )
    classes = _class_folders(folder, files)
    return Survey(folder, len(files), aspects, short_sides, _all_gray(modes), classes, unreadable)


def _class_folders(folder: Path, files: list[Path]) -> list[str]:
    """The sub-folders that a conditional run would take as its classes, when every image
    is in one of them and each holds images; [] when the folder's layout is not that."""
    try:
        classes = folder_classes(folder)
    except DataError:  # images loose in the folder, fewer than two sub-folders
        return []
    holding = {path.relative_to(folder).parts[0] for path in files}
    if len(classes) > MAX_CLASSES or set(classes) != holding:
        return []
    try:
        for name in classes:
            class_name(name)
    except ValueError:
        return []
    return classes


def _header(path: Path) -> tuple[tuple[int, int], str] | str:
    """The picture's size and mode, or why it does not open (the loader skips it later)."""
    try:
        with open_regular(path, MAX_IMAGE_FILE, "picture file") as stream, Image.open(stream) as im:
            if im.width > 0 and im.height > 0:
                return im.size, im.mode
            return "no pixels"
    except (UnsafeFile, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        message = str(exc).removeprefix(f"{path}: ")  # UnsafeFile's names the path again
        return f"{type(exc).__name__}: {shorten(message, 100)}"


GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def _all_gray(modes: list[tuple[Path, str]]) -> bool:
    """Gray when every image is stored gray, or the colour ones checked have R = G = B."""
    colour = [path for path, mode in modes if mode not in GRAY_MODES]
    if not colour:
        return True
    for path in colour[:: max(1, len(colour) // COLOUR_CHECKED)][:COLOUR_CHECKED]:
        try:
            with (
                open_regular(path, MAX_IMAGE_FILE, "picture file") as stream,
                Image.open(stream) as image,
            ):
                image.draft("RGB", (64, 64))  # JPEG decodes at a fraction of its size
                image.thumbnail((64, 64))
                pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
        except (UnsafeFile, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
        if np.abs(pixels - pixels[..., :1]).max() > 8:  # JPEG noise is not colour
            return False
    return True


@dataclass(frozen=True)
class Preset:
    raw: dict  # config keys, as a YAML file would hold them
    reasons: list[str]
    tips: list[str]  # what else the folder allows, for an unconditional run
    count: int  # the folder's image files


def _tips(survey: Survey) -> list[str]:
    if not survey.classes:
        return []
    names = ", ".join(shorten(name, 30) for name in survey.classes[:4]) + (
        f" and {len(survey.classes) - 4} more" if len(survey.classes) > 4 else ""
    )
    return [
        f"the images are in {len(survey.classes)} sub-folders ({names}): if each holds one "
        "kind of picture, `--set model.conditional=true` trains one class per sub-folder, "
        "and `dcgan sample --class NAME` draws that kind (on the emoji's categories, smileys "
        "and flags read as such by step 2,000: README, Colour pictures)"
    ]


def folder_preset(survey: Survey) -> Preset:
    """Config keys for the surveyed folder, and why each was picked."""
    short = statistics.median(survey.short_sides)
    aspect = statistics.median(survey.aspects)
    side = max([s for s in SIZES if s <= short] or [SIZES[0]])
    reasons = [
        f"{survey.count:,} images; median short side {short:g} px, median width/height "
        f"{aspect:.2f} (from {len(survey.aspects)} looked at)"
    ]
    if survey.unreadable:
        looked_at = len(survey.aspects) + len(survey.unreadable)
        reasons.append(
            f"{len(survey.unreadable)} of the {looked_at} files looked at do not open as "
            f"pictures (first: {survey.unreadable[0]}): training skips such files and counts "
            "them"
        )
    image_size, train_aspect = _image_size(side, aspect)
    square = isinstance(image_size, int)
    shown = image_size if square else f"[{image_size[0]}, {image_size[1]}] (height, width)"
    reasons.append(
        f"data.image_size {shown}: "
        + (
            f"square, the largest of {', '.join(map(str, SIZES))} within the short side"
            if square
            else f"{'wider' if aspect > 1 else 'taller'} than square, short side {side}"
        )
    )
    off = sum(abs(a / train_aspect - 1) > 0.1 for a in survey.aspects) / len(survey.aspects)
    resize = "pad" if off > 0.25 else "crop"
    reasons.append(
        f"data.resize {resize}: {100 * off:.0f}% of the images differ from that shape by "
        f"more than 10%" + (", so they are padded, not cut" if resize == "pad" else "")
    )
    channels = 1 if survey.gray else 3
    reasons.append(
        f"data.channels {channels}: the images are {'gray' if survey.gray else 'colour'}"
    )
    model, train = _training_settings(survey, side, channels, reasons)
    raw = {
        "name": _run_name(survey.folder),
        "data": {
            "source": "folder",
            "path": str(survey.folder),
            "image_size": list(image_size) if not square else image_size,
            "channels": channels,
            "resize": resize,
        },
        "model": model,
        "train": train,
        "output": {"sample_every": 250, "checkpoint_every": 1000},
    }
    return Preset(raw, reasons, _tips(survey), survey.count)


def _training_settings(
    survey: Survey, side: int, channels: int, reasons: list[str]
) -> tuple[dict, dict]:
    """The model and train keys for the folder's size and kind (what the evidence in README
    found against a D that wins or memorises), each choice added to reasons."""
    width = 32 if side <= 32 else 64
    train: dict = {"batch_size": 64, "steps": 5000}
    model: dict = {"g_width": width, "d_width": width}
    if channels == 3 and survey.count < SMALL_COLOUR:
        model.update(COLOUR_SETTINGS["model"])
        train.update(COLOUR_SETTINGS["train"])
        reasons.append(
            f"small colour folder (under {SMALL_COLOUR:,} images): model.upsample resize (no "
            "checkerboard), train.augment ada (augmentation as strong as D's overfitting asks, "
            "ada_kimg 100), train.g_lr and d_lr 4e-4, model.ema 0.995 and train.r1_gamma 1: "
            "86% lower Fréchet distance than DiffAugment with transposed convolutions on 3,781 "
            "emoji (README: Colour pictures)"
        )
    elif survey.count < SMALL_DATA:
        train["diffaugment"] = ["color", "translation", "cutout"]
        model["ema"] = 0.99
        reasons.append(
            f"small data (under {SMALL_DATA:,} images): train.diffaugment color, translation, "
            "cutout and model.ema 0.99 against memorising (README: Evidence on 67 images)"
        )
    elif channels == 3:
        train["diffaugment"] = ["color", "translation", "cutout"]
        reasons.append(
            "colour: train.diffaugment color, translation, cutout, so that D does not win "
            "in the first hundreds of steps (README: Colour pictures)"
        )
    return model, train


def few_images_caution(count: int, steps: int, batch_size: int, init_from: object) -> str | None:
    """What a folder of few images means for the run as configured (after any --set), or
    None when the folder is large enough."""
    if count >= FEW_IMAGES:
        return None
    shown = steps * batch_size / count
    caution = (
        f"only {count:,} images: {steps:,} steps of {batch_size} show each about "
        f"{shown:,.0f} times, and a GAN on so few learns to copy them (README: Evidence on "
        "67 images); training warns when its copy rate climbs past eval.copy_rate_warning, "
        "and `dcgan nearest` shows the copies"
    )
    if init_from is None:
        caution += (
            "; a run trained on many similar pictures is a better start: `--set "
            "train.init_from=RUN --set train.freeze_d=2` fine-tunes it on these"
        )
    return caution


def _image_size(side: int, aspect: float) -> tuple[int | tuple[int, int], float]:
    """The training size for short side `side` and the median aspect, and its own aspect."""
    if 1 / SQUARE_ENOUGH <= aspect <= SQUARE_ENOUGH:
        return side, 1.0
    # Every block halves both sides: the long side must divide by the same 2**depth.
    _, depth = base_and_depth((side, side), None)
    stride = 2**depth
    ratio = min(max(aspect, 1 / aspect), MAX_ASPECT)
    long = max(side, round(side * ratio / stride) * stride)
    shape = (side, long) if aspect > 1 else (long, side)
    return shape, shape[1] / shape[0]


def _run_name(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-._")[:64]
    return name or "folder"
