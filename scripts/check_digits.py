"""How well a digits run learned: sample N images, shrink them to the data set's 8x8, and
let a classifier trained on the real digits say which digit each one is.

    .venv/bin/python scripts/check_digits.py runs/00000-digits [-n 1000] [--seed 1]
        [--truncation 0.7]

Prints how many samples fall in each class; a generator that has learned all ten digits
fills every class, one that has collapsed leaves classes empty. For a conditional run
(model.conditional) the samples ask for each digit in turn, and the script also prints,
per requested digit, the share the classifier recognises as that digit. The variety within
a digit (the samples' mean pairwise distance among those of each digit, over the real
digits') tells a generator that draws one prototype per digit (near 0) from a varied one;
it is also given among only the samples the classifier is sure of. The classifier (an RBF SVC)
scores about 99% on held-out real digits, which the script also prints. Two figures judge
how digit-like the samples are, each beside its value for held-out real digits: the
classifier's mean confidence in its answer, and the mean distance (8x8 pixels, 0-16
scale) from a sample to its nearest real digit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import SVC

from dcgan.runtime import import_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--truncation", type=float, default=1.0, help="as dcgan sample's")
    args = parser.parse_args()

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0
    )
    held_out_classifier = SVC(gamma=0.001, probability=True, random_state=0)
    held_out_classifier.fit(x_train, y_train)
    held_out = held_out_classifier.score(x_test, y_test)
    classifier = SVC(gamma=0.001, probability=True, random_state=0)
    classifier.fit(digits.data, digits.target)

    import_tensorflow()
    from dcgan.generation.loading import load_generator
    from dcgan.models.latents import latent_stream

    generator = load_generator(args.ckpt)
    (latents,) = latent_stream(args.seed, args.n, generator.latent_dim, args.n, args.truncation)
    requested = None
    if generator.conditional:
        requested = np.array([int(generator.classes[i % 10]) for i in range(args.n)])
        images = generator.images(latents, classes=np.arange(args.n) % 10)
    else:
        images = generator.images(latents)
    small = np.stack(
        [
            np.asarray(Image.fromarray(image[..., 0]).resize((8, 8), Image.Resampling.BOX))
            for image in images
        ]
    ).astype(np.float32) * (16.0 / 255.0)
    flat = small.reshape(len(small), -1)
    predicted = classifier.predict(flat)
    counts = np.bincount(predicted, minlength=10)
    confidence = classifier.predict_proba(flat).max(axis=1).mean()
    real_confidence = held_out_classifier.predict_proba(x_test).max(axis=1).mean()
    nearest = NearestNeighbors(n_neighbors=1).fit(digits.data).kneighbors(flat)[0].mean()
    real_nearest = NearestNeighbors(n_neighbors=1).fit(x_train).kneighbors(x_test)[0].mean()

    print(f"generator: {generator.source}, truncation {args.truncation:g}")
    print(f"classifier accuracy on held-out real digits: {held_out:.3f}")
    print("digit   " + "".join(f"{d:>6}" for d in range(10)))
    print("samples " + "".join(f"{c:>6}" for c in counts))
    print(f"classes with at least 2% of the samples: {(counts >= 0.02 * args.n).sum()}/10")
    # Variety within a digit: the samples' mean pairwise distance among those of each digit
    # (by the classifier's answer), over that of the real digits of the same digit. A
    # generator that draws one prototype per digit scores near 0 while every class is full.
    # The same among the samples the classifier is at least 80% sure of: malformed samples,
    # which add "variety" of their own, left out.
    sure = classifier.predict_proba(flat).max(axis=1) >= 0.8
    variety, sure_variety = (_variety(flat[keep], predicted[keep], digits) for keep in (
        np.ones(len(flat), bool), sure))  # fmt: skip
    if requested is not None:
        hits = predicted == requested
        per_digit = [hits[requested == d].mean() for d in range(10)]
        print("asked for  " + "".join(f"{d:>7}" for d in range(10)))
        print("recognised " + "".join(f"{a:>7.1%}" for a in per_digit))
        print(
            f"recognised as the requested digit: {hits.mean():.1%} of {args.n} "
            f"(lowest digit: {min(per_digit):.1%})"
        )
    print(f"variety within a digit: {variety:.2f} of the real digits' (1 is as varied)")
    print(
        f"variety within a digit among the {sure.sum()} samples the classifier is at least "
        f"80% sure of: {sure_variety:.2f}"
    )
    print(f"mean confidence: {confidence:.3f} (held-out real digits: {real_confidence:.3f})")
    print(
        f"mean distance to the nearest real digit: {nearest:.1f} "
        f"(held-out real digits: {real_nearest:.1f})"
    )


def _variety(flat: np.ndarray, predicted: np.ndarray, digits) -> float:
    """Mean over digits of the samples' spread (as classified) over the real digits'."""
    ratios = [
        _spread(flat[predicted == d]) / _spread(digits.data[digits.target == d])
        for d in range(10)
        if (predicted == d).sum() >= 2
    ]
    return float(np.mean(ratios))


def _spread(vectors: np.ndarray) -> float:
    """Mean Euclidean distance between distinct rows."""
    squared = (vectors**2).sum(1)
    distances = np.sqrt(
        np.maximum(squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T, 0)
    )
    return float(distances.sum() / (len(vectors) * (len(vectors) - 1)))


if __name__ == "__main__":
    main()
