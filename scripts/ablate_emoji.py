"""The colour ablation of the README: one training run per row, the same seed and the same
budget, on the emoji of scripts/fetch_emoji.py at 64 px, then one table of the judge's
numbers (scripts/judge_emoji.py), dcgan's KID and copy rate, and a grid per row.

    .venv/bin/python scripts/ablate_emoji.py data/emoji --out ablation train [ROW ...]
    .venv/bin/python scripts/ablate_emoji.py data/emoji --out ablation table
    .venv/bin/python scripts/ablate_emoji.py data/emoji --out ablation --seed 1 train ada

`train` runs the rows (all of them without names) that have no finished run in --out yet,
one after another, each as `dcgan train --data DATA --set ...` so that the rows get what a
user gets; `table` judges every finished row and writes --out/grids/ROW.png (64 samples of
seed 0; for a conditional row also ROW-classes.png, 8 of every class), --out/table.json
and --out/ablation.png (16 samples of every row, labelled). Every run tracks a moving
average of G (EMA does not change training), so a row can read G's own weights or its
average from the same run. --seed trains and judges the rows from another
seed (runs ROW-seedN; table-seedN.json, ablation-seedN.png), for the spread between seeds.
A conditional row (the emoji's categories as classes) is judged on samples whose classes
follow the data's category sizes, as its training drew them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEPS = 2000
EMA = 0.99  # about 100 steps: a window that fits a 2,000-step budget


@dataclass(frozen=True)
class Row:
    key: str  # the run's name in --out
    title: str
    overrides: tuple[str, ...]  # --set, in order (a later one wins)
    weights: str = "ema"  # "ema": the moving average; "raw": G's own weights
    run: str | None = None  # another row's run, read with other weights

    def run_name(self, seed: int) -> str:
        return (self.run or self.key) + seed_suffix(seed)


def seed_suffix(seed: int) -> str:
    """What names a seed's runs and files: nothing for seed 0, the ablation's own."""
    return "" if seed == 0 else f"-seed{seed}"


# Every row sets each thing the ablation varies, so that it trains the same whatever
# `--data` picks for the folder today (the preset is what the ablation chose).
PAPER = (
    "model.upsample=transpose",
    "train.augment=none",
    "train.diffaugment=[]",
    "data.xflip=false",
    "model.d_spectral_norm=false",
    "train.loss=bce",
    "train.g_lr=2e-4",  # the preset has doubled them since (row 11)
    "train.d_lr=2e-4",
    "train.r1_gamma=0",
    "train.r1_interval=1",
)
DIFFAUGMENT = "train.diffaugment=[color,translation,cutout]"
RESIZE = "model.upsample=resize"
ADA = ("train.augment=ada", "train.diffaugment=[]", "train.ada_kimg=100")
XFLIP = "data.xflip=true"
SN_HINGE = ("model.d_spectral_norm=true", "train.loss=hinge")
# Miyato et al. (2018) and Zhang et al. (2019, SAGAN): no BatchNorm in a spectrally
# normalised D, Adam without momentum, D four times G's rate.
SNGAN = (
    "model.d_norm=none",
    "train.beta1=0.0",
    "train.beta2=0.9",
    "train.d_lr=4e-4",
    "train.g_lr=1e-4",
)
FAST = ("train.g_lr=4e-4", "train.d_lr=4e-4")  # EMA smooths what the higher rate shakes
# The categories as classes (Mirza & Osindero, 2014; projection D, Miyato & Koyama, 2018),
# with the mode-seeking term a conditional run gets by default.
CONDITIONAL = ("model.conditional=true",)
# A longer moving average: a window of about 200 (0.995) or 500 steps (0.998) in place of
# 100, for a G whose weights still swing at 2,000 steps, the more so at the higher rate.
EMA_200 = "model.ema=0.995"
EMA_500 = "model.ema=0.998"
# R1 (Mescheder et al., 2018), which StyleGAN2-ADA pairs with ADA. At step 300 of the
# preset, |grad D(x)|^2 at the reals is about 7.5: gamma 0.1 adds about half of D's loss
# there (0.4 against 0.7), gamma 1 about five times it.
R1 = "train.r1_gamma=1"
R1_LIGHT = "train.r1_gamma=0.1"
R1_STRONG = "train.r1_gamma=4"
# Lazy R1 (StyleGAN2): the penalty one step in 16, at 16 times gamma, for a pass back
# through D on one step in 16 in place of every one.
R1_LAZY = (R1, "train.r1_interval=16")

ROWS = [
    Row("paper", "paper defaults (BCE, BatchNorm, transposed convolutions)", PAPER,
        weights="raw"),
    Row("roses", f"roses settings (DiffAugment colour, translation, cutout; EMA {EMA})",
        (*PAPER, DIFFAUGMENT)),
    Row("resize", "+ resize upsampling (nearest, then a 3x3 convolution)",
        (*PAPER, DIFFAUGMENT, RESIZE)),
    Row("resize-raw", "  the same run without EMA (G's own weights)", (),
        weights="raw", run="resize"),
    Row("ada", "+ ADA in place of DiffAugment (target 0.6)", (*PAPER, RESIZE, *ADA)),
    Row("xflip", "+ x-flip (mirrored copies)", (*PAPER, RESIZE, *ADA, XFLIP)),
    Row("sn-hinge", "+ spectral norm in D, hinge loss",
        (*PAPER, RESIZE, *ADA, XFLIP, *SN_HINGE)),
    Row("sn-hinge-unflipped", "  the same without x-flip", (*PAPER, RESIZE, *ADA, *SN_HINGE)),
    Row("sngan", "+ SNGAN's D and optimiser (no BatchNorm in D, Adam 0/0.9, rates 1e-4/4e-4)",
        (*PAPER, RESIZE, *ADA, XFLIP, *SN_HINGE, *SNGAN)),
    Row("fast", "row 5 at twice the learning rates (4e-4)", (*PAPER, RESIZE, *ADA, XFLIP, *FAST)),
    Row("fast-unflipped", "  the same without x-flip", (*PAPER, RESIZE, *ADA, *FAST)),
    Row("conditional", "row 4 conditional on the 9 categories",
        (*PAPER, RESIZE, *ADA, *CONDITIONAL)),
    Row("ema995", "row 4 with a longer moving average (0.995)", (*PAPER, RESIZE, *ADA, EMA_200)),
    Row("fast-ema995", "row 8' with a longer moving average (0.995)",
        (*PAPER, RESIZE, *ADA, *FAST, EMA_200)),
    Row("fast-ema998", "row 8' with a longer moving average (0.998)",
        (*PAPER, RESIZE, *ADA, *FAST, EMA_500)),
    Row("fast-conditional", "row 11 conditional on the 9 categories",
        (*PAPER, RESIZE, *ADA, *FAST, EMA_200, *CONDITIONAL)),
    Row("r1", "row 11 + R1 (gamma 1)", (*PAPER, RESIZE, *ADA, *FAST, EMA_200, R1)),
    Row("r1-light", "row 11 + R1 (gamma 0.1)", (*PAPER, RESIZE, *ADA, *FAST, EMA_200, R1_LIGHT)),
    Row("r1-strong", "row 11 + R1 (gamma 4)", (*PAPER, RESIZE, *ADA, *FAST, EMA_200, R1_STRONG)),
    Row("r1-lazy", "row 14 with lazy R1 (one step in 16)",
        (*PAPER, RESIZE, *ADA, *FAST, EMA_200, *R1_LAZY)),
]  # fmt: skip


def find_run(out: Path, name: str) -> Path | None:
    """The newest run called name in out that reached its last checkpoint."""
    from dcgan.storage.checkpoints import latest_checkpoint
    from dcgan.storage.run_folder import RUN_PATTERN

    # NNNNN-name exactly: a glob *-name would also find another row's NNNNN-fast-name
    runs = [run for run in out.glob(f"*-{name}") if RUN_PATTERN.sub("", run.name) == name]
    for run in sorted(runs, reverse=True):
        latest = latest_checkpoint(run / "checkpoints")
        if latest is not None and latest[0] >= STEPS:
            return run
    return None


def row_settings(row: Row, seed: int, out: Path) -> tuple[str, ...]:
    """The --set arguments that train row: the ablation's budget, then the row's own."""
    return (
        f"seed={seed}", f"name={row.run_name(seed)}", f"output.dir={out}",
        f"train.steps={STEPS}",
        f"model.ema={EMA}", f"eval.every={STEPS}", *row.overrides,
    )  # fmt: skip


def train(data: Path, out: Path, rows: list[Row], seed: int) -> None:
    dcgan = Path(sys.executable).with_name("dcgan")
    for row in rows:
        if row.run is not None or find_run(out, row.run_name(seed)) is not None:
            continue
        command = [str(dcgan), "train", "--data", str(data)]
        for setting in row_settings(row, seed, out):
            command += ["--set", setting]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def load_row(run: Path, weights: str):
    """The generator of run's last checkpoint: its moving average or its own weights."""
    from dcgan.generation.loading import load_generator, run_config
    from dcgan.models.loaded import LoadedGenerator
    from dcgan.models.networks import inference_generator
    from dcgan.storage import checkpoints
    from dcgan.storage.run_folder import RunDir

    if weights == "ema":
        return load_generator(run)
    config = run_config(RunDir(run))
    generator = inference_generator(config)
    _, path = checkpoints.latest_checkpoint(run / "checkpoints")
    checkpoints.restore_checkpoint({"generator": generator}, path, partial=True)
    return LoadedGenerator(generator, str(path), RunDir(run))


def judged_samples(generator, count: int, labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """count samples of evaluate's latents; a conditional generator's classes are drawn at
    the data's category frequencies (seed 0), as training drew them, so that the judge
    compares like with like (evaluate draws every class equally often)."""
    from dcgan.metrics.evaluation import EVAL_SEED, generated_images
    from dcgan.models.latents import latent_stream

    if not generator.conditional:
        return generated_images(generator, count)
    order = [classes.index(name) for name in generator.classes]  # judge's index of each
    frequencies = np.bincount(labels, minlength=len(classes))[order] / len(labels)
    chosen = np.random.default_rng(0).choice(len(order), size=count, p=frequencies)
    latents = np.concatenate(list(latent_stream(EVAL_SEED, count, generator.latent_dim, 256)))
    return generator.images(latents, 64, chosen)


def by_class(generator, per_class: int = 8) -> np.ndarray:
    """per_class samples of every class of a conditional generator, a labelled strip each;
    the same latents in every strip, so a column shows what the class changes."""
    from dcgan.imaging import label, make_grid
    from dcgan.models.latents import class_rows, latent_stream

    count = per_class * len(generator.classes)
    latents, classes = class_rows(
        next(latent_stream(0, count, generator.latent_dim, count)), len(generator.classes)
    )
    images = generator.images(latents, 64, classes)
    strips = images.reshape(len(generator.classes), per_class, *images.shape[1:])
    named = zip(strips, generator.classes, strict=True)
    return np.concatenate(
        [label(make_grid(strip, columns=per_class), name) for strip, name in named]
    )


def table(data: Path, out: Path, count: int, seed: int) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).parent))
    from judge_emoji import load_set, scores, split, train_judge

    from dcgan.imaging import label, make_grid, save_png
    from dcgan.metrics.evaluation import evaluate, generated_images, real_subset
    from dcgan.metrics.features import make_extractor

    images, labels, classes = load_set(data)
    judge = train_judge(images, labels, classes)
    trained, _ = split(len(images))
    extractor = make_extractor("auto", download=False)
    print(f"judge: held-out accuracy {judge.held_out_accuracy:.3f}; KID in {extractor.name}")
    (out / "grids").mkdir(parents=True, exist_ok=True)
    results, strips = [], []
    for row in ROWS:
        run = find_run(out, row.run_name(seed))
        if run is None:
            continue
        generator = load_row(run, row.weights)
        samples = judged_samples(generator, count, labels, classes)
        judged = scores(judge, samples, images[trained])
        kid = evaluate(generator, real_subset(images, 5000), extractor, count)
        shown = generated_images(generator, 64, seed=0)
        save_png(make_grid(shown, columns=8), out / "grids" / f"{row.run_name(seed)}.png")
        if generator.conditional:
            save_png(by_class(generator), out / "grids" / f"{row.run_name(seed)}-classes.png")
        strips.append(label(make_grid(shown[:16], columns=8), row.title.strip()))
        results.append({"row": row.key, "title": row.title, "run": str(run)} | judged
                       | {"kid": kid["kid"], "kid_std": kid["kid_std"]})  # fmt: skip
        print(_line(results[-1]), flush=True)
    suffix = seed_suffix(seed)
    (out / f"table{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    if strips:
        save_png(np.concatenate(strips), out / f"ablation{suffix}.png")
    return results


def _line(result: dict) -> str:
    return (
        f"| {result['title']} | {result['frechet']:.2f} | {result['covered']}/"
        f"{result['categories']} | {result['kid']:.4f} ± {result['kid_std']:.4f} | "
        f"{result['copy_rate']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the emoji folder (scripts/fetch_emoji.py)")
    parser.add_argument("--out", type=Path, required=True, help="where the runs go")
    parser.add_argument("-n", type=int, default=1000, help="generated images judged per row")
    parser.add_argument("--seed", type=int, default=0, help="the rows' seed (default 0)")
    parser.add_argument("command", choices=["train", "table"])
    parser.add_argument("rows", nargs="*", help="rows to train (default: all)")
    args = parser.parse_args()
    known = {row.key: row for row in ROWS}
    unknown = [name for name in args.rows if name not in known]
    if unknown:
        parser.error(f"unknown rows {unknown}; the rows are {list(known)}")
    if args.command == "train":
        train(args.data, args.out, [known[name] for name in args.rows] or ROWS, args.seed)
    else:
        print("| settings | judge Fréchet | categories covered | KID | copy rate |")
        print("|---|---|---|---|---|")
        table(args.data, args.out, args.n, args.seed)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
