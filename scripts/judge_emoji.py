"""An independent judge for a colour set with categories (the emoji of
scripts/fetch_emoji.py): a small classifier trained here on the real images' categories,
whose features give a Fréchet distance, whose answers give a category coverage, beside the
project's pixel copy rate. Never part of the package's runtime.

    .venv/bin/python scripts/judge_emoji.py data/emoji --ckpt runs/00007-emoji [-n 1000]
    .venv/bin/python scripts/judge_emoji.py data/emoji --calibrate

The classifier (three stride-2 convolutions, global average pooling, a 128-value feature
layer, softmax over the categories) trains on 80% of the images, seed 0, and states its
accuracy on the other 20%. --calibrate scores three known sets against the training
images: held-out real images (the floor), the same blurred (radius 2) and uniform noise.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from dcgan.runtime import import_tensorflow

FEATURES = 128


@dataclass
class Judge:
    model: object  # keras.Model: images -> (features, probabilities)
    classes: list[str]
    held_out_accuracy: float

    def read(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features, predicted class) of uint8 images."""
        features, probabilities = self.model.predict(_scaled(images), batch_size=256, verbose=0)
        return features.astype(np.float64), probabilities.argmax(axis=1)


def load_set(folder: Path, size: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from dcgan.config import DataConfig
    from dcgan.data.classes import folder_classes
    from dcgan.data.sources import load_labelled

    classes = folder_classes(folder)
    config = DataConfig(source="folder", path=folder, image_size=size, channels=3, classes=classes)
    images, labels = load_labelled(config)
    return images, labels, classes


def split(count: int, seed: int = 0, held_out: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(count * held_out))
    return order[cut:], order[:cut]


def train_judge(
    images: np.ndarray, labels: np.ndarray, classes: list[str], epochs: int = 12, seed: int = 0
) -> Judge:
    keras = import_tensorflow().keras
    keras.utils.set_random_seed(seed)
    train, held = split(len(images), seed)
    inputs = keras.Input(images.shape[1:])
    x = inputs
    for width in (32, 64, 128):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    features = keras.layers.Dense(FEATURES, activation="relu", name="features")(x)
    probabilities = keras.layers.Dense(len(classes), activation="softmax")(features)
    trainer = keras.Model(inputs, probabilities)
    trainer.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # Categories differ in size (people-and-body is 60% of the emoji): each counts alike.
    counts = np.bincount(labels[train], minlength=len(classes)).astype(np.float64)
    weights = {i: len(train) / (len(classes) * max(c, 1)) for i, c in enumerate(counts)}
    trainer.fit(
        _scaled(images[train]), labels[train], epochs=epochs, batch_size=64,
        class_weight=weights, verbose=0,
    )  # fmt: skip
    _, accuracy = trainer.evaluate(_scaled(images[held]), labels[held], verbose=0)
    return Judge(keras.Model(inputs, [features, probabilities]), classes, float(accuracy))


def scores(judge: Judge, samples: np.ndarray, real: np.ndarray) -> dict:
    """The judge's Fréchet distance and category coverage of samples against real images,
    and dcgan's pixel copy rate."""
    from dcgan.metrics.evaluation import measured_copy_rate
    from dcgan.metrics.scores import fid

    sample_features, predicted = judge.read(samples)
    real_features, _ = judge.read(real)
    shares = np.bincount(predicted, minlength=len(judge.classes)) / len(samples)
    return {
        "frechet": float(fid(real_features, sample_features)),
        # A category is covered when it gets at least a fifth of an even share.
        "covered": int((shares >= 0.2 / len(judge.classes)).sum()),
        "categories": len(judge.classes),
        "copy_rate": float(measured_copy_rate(samples, real).rate),
    }


def blurred(images: np.ndarray, radius: float = 2.0) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius))) for i in images]
    )


def noise(count: int, shape: tuple, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def _scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of category sub-folders")
    parser.add_argument("--ckpt", type=Path, help="a run or checkpoint to judge")
    parser.add_argument("-n", type=int, default=1000, help="generated images judged")
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    images, labels, classes = load_set(args.data)
    judge = train_judge(images, labels, classes)
    train, held = split(len(images))
    print(f"judge: {len(classes)} categories, {len(images)} images; held-out accuracy "
          f"{judge.held_out_accuracy:.3f}")  # fmt: skip
    rows = []
    if args.calibrate:
        rows += [
            ("real, held out", images[held]),
            ("real, held out, blurred (radius 2)", blurred(images[held])),
            ("uniform noise", noise(len(held), images.shape[1:])),
        ]
    if args.ckpt:
        from dcgan.generation.loading import load_generator
        from dcgan.metrics.evaluation import generated_images

        rows.append(
            (f"generated: {args.ckpt}", generated_images(load_generator(args.ckpt), args.n))
        )
    print(f"{'images':<44} {'Fréchet':>9} {'covered':>9} {'copy rate':>10}")
    for name, samples in rows:
        result = scores(judge, samples, images[train])
        covered = f"{result['covered']}/{result['categories']}"
        print(f"{name:<44} {result['frechet']:>9.2f} {covered:>9} {result['copy_rate']:>10.3f}")


if __name__ == "__main__":
    main()
