"""EMA evidence, paired: G's live weights against their moving average at the same
checkpoints of the same runs, on the 67-digit subset of scripts/small_data.py.

    .venv/bin/python scripts/ema_evidence.py [--steps 3000] [--seeds 0,1,2] [--decay 0.99]
        [--variants plain,diffaugment] [--out runs-small]

The average is only read, never trained on, so an EMA run's live weights are exactly those
of the same run without EMA: each checkpoint gives a pair whose only difference is the
averaging, free of the run-to-run noise of GAN training. Each run keeps a checkpoint every
500 steps; both generators of each are scored by KID on 1,000 samples against all 1,797
digits in the fixed random feature space (50 subsets), with and without DiffAugment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from small_data import train

from dcgan.runtime import import_tensorflow

DIFFAUGMENT = "train.diffaugment=[color,translation,cutout]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--decay", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=Path("runs-small"))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--variants", default="plain,diffaugment")
    args = parser.parse_args()

    keep = f"output.keep_checkpoints={args.steps // 500}"
    settings = ("output.checkpoint_every=500", keep, f"model.ema={args.decay}")
    variants = args.variants.split(",")
    runs = {
        (variant, seed): train(
            f"{'diffaugment+' if variant == 'diffaugment' else ''}ema{args.decay}-seed{seed}",
            (*settings, f"seed={seed}", *((DIFFAUGMENT,) if variant == "diffaugment" else ())),
            args.steps,
            args.out,
        )
        for variant in variants
        for seed in map(int, args.seeds.split(","))
    }

    import_tensorflow()
    from dcgan.config import DataConfig
    from dcgan.data.sources import load_images
    from dcgan.generation.loading import load_generator, run_config
    from dcgan.metrics import scores
    from dcgan.metrics.evaluation import generated_images
    from dcgan.metrics.features import random_extractor
    from dcgan.models.loaded import LoadedGenerator
    from dcgan.models.networks import inference_generator
    from dcgan.storage import checkpoints, run_folder

    extractor = random_extractor()
    real = extractor.features(load_images(DataConfig()))

    def kid(generator: LoadedGenerator) -> float:
        fake = extractor.features(generated_images(generator, args.samples))
        return scores.kid(real, fake, subsets=50).mean

    print(f"KID vs all 1797 digits, {args.samples} samples, {extractor.name}, EMA {args.decay}")
    print(f"{'variant':<12} {'seed':>4} {'step':>5} {'live':>7} {'EMA':>7}")
    for variant in variants:
        pairs = []
        for seed in map(int, args.seeds.split(",")):
            run = runs[variant, seed]
            config = run_config(run_folder.open_run_dir(run))
            for step, path in checkpoints.list_checkpoints(run / "checkpoints"):
                live = inference_generator(config)
                checkpoints.restore_checkpoint({"generator": live}, path, partial=True)
                pair = kid(LoadedGenerator(live, str(path))), kid(load_generator(path))
                pairs.append(pair)
                print(f"{variant:<12} {seed:>4} {step:>5} {pair[0]:>7.4f} {pair[1]:>7.4f}")
        summarise(variant, pairs, per_run=len(pairs) // len(args.seeds.split(",")))


def summarise(variant: str, pairs: list[tuple[float, float]], per_run: int) -> None:
    """Live against EMA over all checkpoints, past each run's first (where the average has
    the largest head start) and at each run's last."""
    later = [pair for i, pair in enumerate(pairs) if i % per_run]
    last = pairs[per_run - 1 :: per_run]
    lower = sum(average < trained for trained, average in pairs)
    print(f"{variant}: EMA lower at {lower} of {len(pairs)} checkpoints")
    for label, chosen in (("all", pairs), ("past the first", later), ("last", last)):
        live, average = (sum(pair[i] for pair in chosen) / len(chosen) for i in (0, 1))
        worst = max(pair[0] for pair in chosen), max(pair[1] for pair in chosen)
        print(
            f"  {label:<15} mean KID live {live:.4f} EMA {average:.4f}; "
            f"worst live {worst[0]:.4f} EMA {worst[1]:.4f}"
        )


if __name__ == "__main__":
    main()
