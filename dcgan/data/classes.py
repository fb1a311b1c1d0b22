"""The classes of a conditional run: a standard data set's own names, or a folder's
immediate sub-folders, sorted. Found before any image is decoded, so that the models can
be built (one embedding row per class) and a bad layout is one line before training."""

from __future__ import annotations

import os
from pathlib import Path

from dcgan.config import MAX_CLASSES, Config, class_name
from dcgan.data.sources import IMAGE_SUFFIXES
from dcgan.errors import DataError, printable, shorten

DIGITS = [str(i) for i in range(10)]
STANDARD_CLASSES = {
    "digits": DIGITS,
    "mnist": DIGITS,
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
    # stl10_binary/class_names.txt, in the order of train_y.bin's labels 1..10
    "stl10": [
        "airplane",
        "bird",
        "car",
        "cat",
        "deer",
        "dog",
        "horse",
        "monkey",
        "ship",
        "truck",
    ],
}


def with_classes(config: Config) -> Config:
    """config with data.classes filled in for a conditional run (unchanged otherwise):
    what training records in the run's config.yaml."""
    if not config.model.conditional:
        return config
    data = config.data
    if data.source != "folder":
        names = STANDARD_CLASSES[data.source]
        if data.classes is not None and list(data.classes) != names:
            raise DataError(
                f"data.classes: data.source {data.source} has its own classes "
                f"({', '.join(names)}); leave data.classes out"
            )
        classes = names
    else:
        classes = folder_classes(data.path, data.classes)
        if len(classes) > MAX_CLASSES:
            raise DataError(
                f"data.path {printable(data.path)}: {len(classes)} class sub-folders, over the "
                f"{MAX_CLASSES} a conditional run may have"
            )
        for name in classes:  # each must read back from config.yaml as a class name
            try:
                class_name(name)
            except ValueError as exc:
                raise DataError(f"data.path {printable(data.path)}: sub-folder {exc}") from None
    return config.model_copy(update={"data": data.model_copy(update={"classes": classes})})


def folder_classes(folder: Path, chosen: list[str] | None = None) -> list[str]:
    """The class sub-folders of folder, sorted (hidden ones left out), or the chosen ones
    after checking that each is there. Images directly in folder are refused unless the
    classes are chosen: they belong to no class."""
    where = f"data.path {printable(folder)}"
    try:
        with os.scandir(folder) as scan:
            entries = list(scan)
    except OSError as exc:
        raise DataError(f"{where}: cannot list this folder: {exc.strerror or exc}") from None
    folders = sorted(
        e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
    )
    if chosen is not None:
        missing = [name for name in chosen if name not in folders]
        if missing:
            raise DataError(
                f"data.classes: '{shorten(printable(missing[0]), 60)}' is not a sub-folder of "
                f"{printable(folder)}"
                + (f" (it has {_listed(folders)})" if folders else " (it has none)")
            )
        return list(chosen)
    loose = sorted(
        e.name for e in entries if not e.is_dir() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
    )
    if loose:
        raise DataError(
            f"{where}: {len(loose)} image file(s) directly in the folder (first: "
            f"{shorten(printable(loose[0]), 60)}); a conditional run (model.conditional) "
            "takes each image's class from its sub-folder: move them into one, or list the "
            "classes to read in data.classes"
        )
    if len(folders) < 2:
        found = f"only one, {printable(folders[0])}" if folders else "none"
        raise DataError(
            f"{where}: a conditional run (model.conditional) needs two or more class "
            f"sub-folders, one per class (such as cat/ and dog/); found {found}"
        )
    return folders


def _listed(names: list[str], shown: int = 6) -> str:
    text = ", ".join(shorten(printable(name), 30) for name in names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")
