"""Measuring a generator: `dcgan evaluate` scores it, `dcgan nearest` looks for copies."""

from __future__ import annotations

from pathlib import Path

import click

from dcgan.cli.common import (
    MAX_SCORED,
    batch_size_option,
    ckpt_option,
    default_out,
    features_option,
    force_option,
    input_errors,
    report,
    seed_option,
    shown,
)
from dcgan.config import COPY_RATE_WARNING, MAX_REAL
from dcgan.runtime import import_tensorflow

inception_weights_option = click.option(
    "--inception-weights",
    type=click.Path(path_type=Path),
    help="InceptionV3 no-top weights (.h5). Default: Keras' cache "
    "(~/.keras/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5).",
)


@click.command(short_help="Score a generator: FID, KID, precision/recall, copy rate.")
@ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(10, MAX_SCORED),
    default=10000,
    show_default=True,
    help=f"Generated images to score (at most {MAX_SCORED}: all are held in memory).",
)
@click.option(
    "--max-real",
    type=click.IntRange(10, MAX_SCORED),
    default=MAX_REAL,
    show_default=True,
    help="Training images to compare with (a fixed random subset of larger data sets; at "
    f"most {MAX_SCORED}).",
)
@features_option()
@inception_weights_option
@batch_size_option
def evaluate(
    ckpt: Path,
    count: int,
    max_real: int,
    features: str,
    inception_weights: Path | None,
    batch_size: int,
) -> None:
    """Score a generator against its run's training data: FID, KID (with its spread over
    subsets), precision/recall and the copy rate. Written to <run>/eval/ as JSON.

    \b
    Example:
      dcgan evaluate --ckpt runs/00003-biked/checkpoints/best
    """
    import_tensorflow()
    from dcgan.data.sources import load_labelled
    from dcgan.generation.loading import load_generator, run_config
    from dcgan.metrics import evaluation
    from dcgan.metrics.features import make_extractor

    with input_errors():
        generator = load_generator(ckpt)
        extractor = make_extractor(features, inception_weights)
        out = evaluation.results_path(generator, extractor)
        images, labels = load_labelled(run_config(generator.run).data)
        kept = evaluation.real_subset_indices(len(images), max_real)
        real, real_labels = images[kept], None if labels is None else labels[kept]
        results = evaluation.evaluate(
            generator, real, extractor, count, batch_size=batch_size, real_labels=real_labels
        )
        evaluation.write_results(results, out)
    lines = [
        f"{shown(Path(generator.source))} in {extractor.name}, {count} generated against "
        f"{len(real)} real images:",
        f"  FID {results['fid']:.3f}   KID {results['kid']:.5f} +- {results['kid_std']:.5f}",
        f"  precision {results['precision']:.3f}   recall {results['recall']:.3f}   "
        f"copy rate {results['copy_rate']:.3f}",
    ]
    for name, entry in results.get("per_class", {}).items():
        kid = f"KID {entry['kid']:.5f} +- {entry['kid_std']:.5f}" if "kid" in entry else "KID -"
        rate = entry["copy_rate"]
        lines.append(
            f"  class {name}: {kid}   copy rate {'-' if rate is None else f'{rate:.3f}'}   "
            f"({entry['generated_images']} generated, {entry['real_images']} real)"
        )
    lines.append(f"wrote {shown(out)}")
    click.echo("\n".join(lines))


@click.command(short_help="Show samples beside their nearest training images.")
@ckpt_option
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Samples shown, one per row.",
)
@click.option(
    "-k",
    "neighbours",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Nearest training images shown per sample, in pixels and in features.",
)
@click.option(
    "--rate-samples",
    type=click.IntRange(10, MAX_SCORED),
    default=10000,
    show_default=True,
    help="Samples the copy rate is measured on: the same images as `dcgan evaluate -n N`, "
    f"so the two agree (at most {MAX_SCORED}).",
)
@seed_option
@features_option()
@inception_weights_option
@click.option("--out", type=click.Path(path_type=Path), help="Folder. Default: <run>/nearest/.")
@force_option
def nearest(
    ckpt: Path,
    count: int,
    neighbours: int,
    rate_samples: int,
    seed: int,
    features: str,
    inception_weights: Path | None,
    out: Path | None,
    force: bool,
) -> None:
    """Has the generator copied its training images? A grid of samples, each beside its
    nearest training images (pixels, then features), and the copy rate: the share of
    samples closer to a training image than training images are to each other.

    \b
    Example:
      dcgan nearest --ckpt runs/00004-roses -n 8 -k 4
    """
    import_tensorflow()
    from dcgan.data.sources import load_images
    from dcgan.generation.loading import load_generator, run_config
    from dcgan.metrics import evaluation
    from dcgan.metrics.features import make_extractor

    with input_errors():
        generator = load_generator(ckpt)
        run = evaluation.require_run(generator)
        extractor = make_extractor(features, inception_weights)
        # The same training images as `evaluate`'s default: all of them up to MAX_REAL.
        real = evaluation.real_subset(load_images(run_config(run).data), MAX_REAL)
        query = evaluation.NearestQuery(count, neighbours, rate_samples, seed)
        out = out or default_out(generator, "nearest")
        written, copies = evaluation.write_nearest(generator, real, extractor, query, out, force)
    rate, threshold = copies["copy_rate"], copies["copy_threshold"]
    click.echo(
        f"copy rate {rate:.3f}: {rate:.1%} of {rate_samples} samples are nearer a training "
        f"image than {1 - copies['copy_quantile']:.0%} of training images are to their own "
        f"nearest neighbour (pixel distance {threshold:.3f}); "
        + (
            "it is copying training images"
            if rate >= COPY_RATE_WARNING
            else f"below {COPY_RATE_WARNING} (images it never saw would score about "
            f"{copies['copy_quantile']:g}), but look at the grid"
        )
    )
    report(written, f"{count} samples beside their {neighbours} nearest of {len(real)} "
            f"training images (pixels | {extractor.name})")  # fmt: skip
