"""Small-data evidence: train the digits default on a 67-image subset (the roses article's
count) with and without DiffAugment and EMA, same seed and steps, and score each run.

    .venv/bin/python scripts/small_data.py [--steps 3000] [--out runs-small]

Each variant is one `dcgan train` run. The final generator (the EMA weights where on) is
scored by KID in the fixed random feature space (no download) against the 67 training
images and against all 1,797 digits, by the copy rate against the 67 (share of samples
closer to a training image than 90% of training images are to their own nearest one),
and the script prints the copy rate and KID that training itself logged at every
evaluation, so a run that starts to memorise shows up in the log as it happens.
scripts/ema_evidence.py compares EMA with the live weights checkpoint by checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from dcgan.runtime import import_tensorflow

VARIANTS = {
    "plain": (),
    "diffaugment": ("train.diffaugment=[color,translation,cutout]",),
    "ema0.99": ("model.ema=0.99",),
    "diffaugment+ema0.99": ("train.diffaugment=[color,translation,cutout]", "model.ema=0.99"),
}


def train(name: str, overrides: tuple[str, ...], steps: int, out: Path) -> Path:
    """The variant's run in out: trained now, or a finished one from an earlier call."""
    pattern = f"*-small-{name.replace('+', '-')}"
    finished = [run for run in sorted(out.glob(pattern)) if (run / "generator.keras").is_file()]
    if finished:
        return finished[-1]
    settings = (
        f"name=small-{name.replace('+', '-')}",
        "data.max_images=67",
        "train.batch_size=32",
        f"train.steps={steps}",
        "eval.every=500",
        "eval.num_samples=500",
        "eval.features=random",
        "output.sample_every=500",
        f"output.dir={out}",
        *overrides,
    )
    command = [sys.executable, "-m", "dcgan", "train"]
    for setting in settings:
        command += ["--set", setting]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return sorted(out.glob(pattern))[-1]


def logged(run: Path, column: str) -> list[float]:
    with open(run / "metrics.csv", newline="") as stream:
        return [float(row[column]) for row in csv.DictReader(stream) if row.get(column)]


def listed(values: list[float]) -> str:
    return " ".join(f"{value:.3f}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("runs-small"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()

    runs = {
        name: train(name, VARIANTS[name], args.steps, args.out) for name in args.variants.split(",")
    }

    import_tensorflow()
    from dcgan import imaging
    from dcgan.config import DataConfig
    from dcgan.data.sources import load_images
    from dcgan.generation.loading import load_generator
    from dcgan.metrics import scores
    from dcgan.metrics.evaluation import generated_images
    from dcgan.metrics.features import random_extractor

    extractor = random_extractor()
    subset = load_images(DataConfig(max_images=67))
    every = load_images(DataConfig())
    subset_features, every_features = extractor.features(subset), extractor.features(every)
    print(f"{args.steps} steps, batch 32, seed 0, {args.samples} samples, {extractor.name}")
    print(
        f"{'variant':<20} {'KID vs the 67':>16} {'KID vs all 1797':>16} {'copy rate':>9}"
        f" {'mean logged KID':>15}  logged at each 500 steps: copy rate | KID"
    )
    for name, run in runs.items():
        generator = load_generator(run / "generator.keras")
        images = generated_images(generator, args.samples)
        fake = extractor.features(images)
        near = scores.kid(subset_features, fake, subsets=50)
        far = scores.kid(every_features, fake, subsets=50)
        copies = scores.copy_rate(imaging.from_uint8(images), imaging.from_uint8(subset))
        kids = logged(run, "kid")  # training's own evaluations: the course, not one point
        print(
            f"{name:<20} {near.mean:>8.4f}+-{near.std:.4f} {far.mean:>8.4f}+-{far.std:.4f} "
            f"{copies.rate:>9.3f} {sum(kids) / len(kids):>15.4f}  "
            f"{listed(logged(run, 'copy_rate'))} | {listed(kids)}"
        )
    print("runs:", ", ".join(str(run) for run in runs.values()))


if __name__ == "__main__":
    main()
