"""Score a generator against its run's training data: FID, KID, precision/recall, copy
rate; written as JSON in the run's eval/ folder."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan import imaging
from dcgan.errors import RunDirError
from dcgan.files import writing
from dcgan.files.reading import UnsafeFile, open_regular
from dcgan.metrics import scores
from dcgan.metrics.features import FeatureExtractor
from dcgan.models.latents import balanced_classes, latent_stream
from dcgan.models.loaded import LoadedGenerator
from dcgan.storage import run_folder
from dcgan.storage.run_folder import RunDir

log = logging.getLogger(__name__)

EVAL_SEED = 2**31 - 1  # latents apart from sample --seed's small seeds


def generated_images(
    generator: LoadedGenerator, count: int, seed: int = EVAL_SEED, batch_size: int = 64
) -> np.ndarray:
    """count images of the seed's latents; a conditional generator draws every class
    equally often, in turn (generated_classes)."""
    classes = generated_classes(generator, count)
    chunks = []
    for start, latents in zip(
        range(0, count, batch_size),
        latent_stream(seed, count, generator.latent_dim, batch_size),
        strict=True,
    ):
        chosen = None if classes is None else classes[start : start + len(latents)]
        chunks.append(generator.images(latents, batch_size, chosen))
    return np.concatenate(chunks)


def generated_classes(generator: LoadedGenerator, count: int) -> np.ndarray | None:
    """The class of each of generated_images' images (None when unconditional): 0, 1, ...
    in turn, as training's evaluation draws them."""
    if not generator.conditional:
        return None
    return balanced_classes(count, len(generator.classes))


def real_subset(images: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """At most limit training images, the same ones every time for a given data set."""
    return images[real_subset_indices(len(images), limit, seed)]


def real_subset_indices(count: int, limit: int, seed: int = 0) -> np.ndarray | slice:
    """Which of count training images real_subset keeps (their labels go with them)."""
    if count <= limit:
        return slice(None)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def real_features(
    run: RunDir | None, images: np.ndarray, extractor: FeatureExtractor
) -> np.ndarray:
    """The training images' features, kept in the run (eval/real-<space>-<n>.npy) so that
    evaluations during and after training pay for them once."""
    if run is None:
        return extractor.features(images)
    run_folder.refuse_links(run, ("eval",))
    path = run.eval_dir / f"real-{extractor.name}-{len(images)}.npy"
    if path.is_file():
        try:
            limit = len(images) * extractor.dim * 8 + 4096
            with open_regular(path, limit, "feature cache") as stream:
                cached = np.load(stream, allow_pickle=False)
            if cached.shape == (len(images), extractor.dim):
                return cached
        except (OSError, ValueError, EOFError, UnsafeFile):
            pass  # a damaged cache is recomputed
    features = extractor.features(images)
    writing.make_folder(path.parent)
    with writing.atomic_path(path) as tmp, open(tmp, "wb") as stream:
        np.save(stream, features)
    return features


def evaluate(
    generator: LoadedGenerator,
    real_images: np.ndarray,
    extractor: FeatureExtractor,
    num_samples: int,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k: int = 3,
    seed: int = EVAL_SEED,
    batch_size: int = 64,
    real_labels: np.ndarray | None = None,
) -> dict:
    """Every score of the generator's num_samples images against real_images, as a
    JSON-ready dict. The real images are used whole; FID's covariance wants thousands of
    images on each side for numbers that compare with published ones. For a conditional
    generator with the real images' labels, also each class's KID and copy rate."""
    fake_images = generated_images(generator, num_samples, seed, batch_size)
    real = real_features(generator.run, real_images, extractor)
    fake = extractor.features(fake_images, batch_size)
    kid = scores.kid(real, fake, subsets=kid_subsets, subset_size=kid_subset_size)
    precision_recall = scores.precision_recall(real, fake, k=k)
    copies = measured_copy_rate(fake_images, real_images)
    return {
        "checkpoint": generator.source,
        "features": extractor.name,
        "real_images": len(real_images),
        "generated_images": num_samples,
        "fid": scores.fid(real, fake),
        "kid": kid.mean,
        "kid_std": kid.std,
        "kid_subsets": kid.subsets,
        "kid_subset_size": kid.subset_size,
        "precision": precision_recall.precision,
        "recall": precision_recall.recall,
        "k": precision_recall.k,
        "copy_rate": copies.rate,
        "copy_threshold": copies.threshold,
        "median_nearest_distance": float(np.median(copies.sample_distances)),
    } | _per_class(generator, num_samples, real, fake, real_labels, copies, kid_subsets)


def _per_class(
    generator: LoadedGenerator,
    num_samples: int,
    real: np.ndarray,
    fake: np.ndarray,
    real_labels: np.ndarray | None,
    copies: scores.CopyRate,
    kid_subsets: int,
) -> dict:
    """{"per_class": {name: {kid, kid_std, copy_rate, ...}}} for a conditional run: each
    class's samples against that class's training images (KID), and the share of them
    nearer a training image than the copy threshold; {} otherwise."""
    fake_labels = generated_classes(generator, num_samples)
    if fake_labels is None or real_labels is None:
        return {}
    copied = copies.sample_distances < copies.threshold
    per_class = {}
    for label, name in enumerate(generator.classes):
        mine, theirs = fake_labels == label, real_labels == label
        entry = {"generated_images": int(mine.sum()), "real_images": int(theirs.sum())}
        if min(mine.sum(), theirs.sum()) >= 4:  # KID's least
            kid = scores.kid(real[theirs], fake[mine], subsets=kid_subsets)
            entry |= {"kid": kid.mean, "kid_std": kid.std, "kid_subset_size": kid.subset_size}
        entry["copy_rate"] = float(copied[mine].mean()) if mine.any() else None
        per_class[name] = entry
    return {"per_class": per_class}


def measured_copy_rate(samples: np.ndarray, training: np.ndarray) -> scores.CopyRate:
    """The copy rate as every command reports it: images of the evaluation latents
    (EVAL_SEED, the first N of them) against the training images in pixels. `evaluate` and
    `nearest` with the same count and training images give the same number; training's
    evaluation measures the first eval.num_samples of the same latents."""
    return scores.copy_rate(imaging.from_uint8(samples), imaging.from_uint8(training))


def require_run(generator: LoadedGenerator) -> RunDir:
    if generator.run is None:
        raise RunDirError(
            f"--ckpt {generator.source}: this needs a run directory or a checkpoint inside "
            "one (its config names the training data)"
        )
    return generator.run


def results_path(generator: LoadedGenerator, extractor: FeatureExtractor) -> Path:
    """<run>/eval/<checkpoint>-<space>.json: one file per checkpoint and feature space."""
    run = require_run(generator)
    run_folder.refuse_links(run, ("eval",))
    return run.eval_dir / f"{_checkpoint_stem(generator)}-{extractor.name}.json"


def write_results(results: dict, path: Path) -> None:
    writing.make_folder(path.parent)
    writing.atomic_write_text(path, json.dumps(results, indent=2) + "\n")


@dataclass(frozen=True)
class NearestQuery:
    """What `dcgan nearest` shows: count samples (latents from seed, as `dcgan sample`),
    each beside its neighbours nearest training images; and the copy rate of rate_samples
    images of the evaluation latents, as `dcgan evaluate -n rate_samples` measures it."""

    count: int = 8
    neighbours: int = 4
    rate_samples: int = 10000
    seed: int = 0


def write_nearest(
    generator: LoadedGenerator,
    real_images: np.ndarray,
    extractor: FeatureExtractor,
    query: NearestQuery,
    out: Path,
    force: bool,
) -> tuple[list[Path], dict]:
    """The memorisation check: a table whose rows are one generated sample, its nearest
    training images in pixels, then its nearest in features, each titled and captioned
    with its distance, and the copy rate of rate_samples samples, as <stem>.png and
    <stem>.json in out."""
    stem = f"{_checkpoint_stem(generator)}-seed-{query.seed}"
    grid_path, json_path = out / f"{stem}.png", out / f"{stem}.json"
    writing.refuse_existing([grid_path, json_path], force)
    shown = generated_images(generator, query.count, query.seed)
    real_pixels = imaging.from_uint8(real_images)
    by_pixels, pixel_distances = scores.nearest(
        imaging.from_uint8(shown).reshape(query.count, -1),
        real_pixels.reshape(len(real_images), -1),
        query.neighbours,
    )
    real = real_features(generator.run, real_images, extractor)
    by_features, feature_distances = scores.nearest(
        extractor.features(shown), real, query.neighbours
    )
    k = query.neighbours
    cells, captions = [], []
    for i in range(query.count):
        cells += [shown[i], None, *real_images[by_pixels[i]], None, *real_images[by_features[i]]]
        captions += [f"#{i}", "", *(f"{d:.2f}" for d in pixel_distances[i]), ""]
        captions += [f"{d:.2f}" for d in feature_distances[i]]
    titles = {0: "sample", 2: "nearest in pixels", 3 + k: f"nearest in {extractor.name}"}
    writing.make_folder(out, "--out")
    grid = imaging.captioned_grid(cells, captions, columns=3 + 2 * k, titles=titles)
    imaging.save_png(grid, grid_path)
    copies = measured_copy_rate(generated_images(generator, query.rate_samples), real_images)
    report = {
        "checkpoint": generator.source,
        "features": extractor.name,
        "training_images": len(real_images),
        "samples": query.rate_samples,
        "copy_rate": copies.rate,
        "copy_threshold": copies.threshold,
        "copy_quantile": copies.quantile,
        "median_nearest_distance": float(np.median(copies.sample_distances)),
        "shown_nearest_pixel_distances": pixel_distances[:, 0].round(4).tolist(),
        "shown_nearest_feature_distances": feature_distances[:, 0].round(4).tolist(),
    }
    writing.atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    return [grid_path, json_path], report


def _checkpoint_stem(generator: LoadedGenerator) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(generator.source).name.removesuffix(".keras"))
