"""Evaluation during training, checkpoints/best, and the warnings for collapse, a D that
has won, and memorisation."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import copy_run, run_dirs, tiny_config, write_config
from PIL import Image, ImageDraw

from dcgan.runtime import import_tensorflow

tf = import_tensorflow()

from tensorflow.core.util import event_pb2  # noqa: E402

from dcgan.cli import main  # noqa: E402
from dcgan.metrics.features import random_extractor  # noqa: E402
from dcgan.storage.metrics_file import read_metrics  # noqa: E402
from dcgan.storage.run_folder import RunDir  # noqa: E402
from dcgan.training import callbacks  # noqa: E402

pytestmark = pytest.mark.slow  # trains models: -m "not slow" leaves it out


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def evaluated_config(tmp_path: Path, **train) -> dict:
    config = tiny_config(tmp_path, train={"steps": 6, **train})
    config["eval"] = {"every": 3, "num_samples": 12, "features": "auto"}
    config["output"]["log_every"] = 3
    return config


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("monitored")
    result = invoke("train", "--config", write_config(tmp_path, evaluated_config(tmp_path)))
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    return run


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for path in (run / "logs").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                if number is not None and number.ndim == 0:
                    found.setdefault(value.tag, []).append((event.step, float(number)))
    return found


def test_r1_has_its_own_column_scalar_and_panel_and_stays_empty_without_it(tmp_path):
    for name, gamma in (("plain", 0.0), ("r1", 2.0)):
        config = tiny_config(tmp_path, name=name, train={"steps": 4, "r1_gamma": gamma})
        result = invoke("train", "--config", write_config(tmp_path, config, f"{name}.yaml"))
        assert result.exit_code == 0, result.output
    plain, penalised = run_dirs(tmp_path)
    rows = read_metrics(penalised / "metrics.csv")
    assert [row["step"] for row in rows] == ["2", "4"]
    assert all(float(row["r1"]) > 0 for row in rows)
    # d_loss holds it: it can only be as large as d_loss, a BCE sum of at least 0.
    assert all(float(row["r1"]) < float(row["d_loss"]) for row in rows)
    logged = scalars(penalised)
    assert [step for step, _ in logged["r1"]] == [2, 4]
    for (_, value), row in zip(logged["r1"], rows, strict=True):
        assert value == pytest.approx(float(row["r1"]), rel=1e-5)
    assert [row["r1"] for row in read_metrics(plain / "metrics.csv")] == ["", ""]
    assert "r1" not in scalars(plain)
    with Image.open(plain / "losses.png") as without, Image.open(penalised / "losses.png") as with_:
        assert with_.width - without.width == 400  # one more panel, R1's


def test_kid_diversity_and_copy_rate_reach_metrics_csv_tensorboard_and_the_plot(evaluated_run):
    rows = {int(row["step"]): row for row in read_metrics(evaluated_run / "metrics.csv")}
    assert sorted(rows) == [3, 6]
    logged = scalars(evaluated_run)
    text = (evaluated_run / "train.log").read_text()
    assert [step for step, _ in logged["kid"]] == [3, 6]
    for (step, kid), in_log in zip(
        logged["kid"], re.findall(r"step \d+: KID (\S+)", text), strict=True
    ):
        # One measurement, three places: the CSV row, TensorBoard and the log line.
        assert float(rows[step]["kid"]) == pytest.approx(kid, rel=1e-4)
        assert float(in_log) == pytest.approx(kid, rel=1e-2, abs=1e-4)
        assert 0.0 <= float(rows[step]["copy_rate"]) <= 1.0  # 64 images: checked
        assert float(rows[step]["diversity"]) > 0
        assert 0.0 <= float(rows[step]["d_accuracy"]) <= 1.0
    assert float(rows[3]["kid"]) != float(rows[6]["kid"])  # G changed between them
    assert {"d_accuracy", "diversity", "copy_rate"} <= set(logged)
    with Image.open(evaluated_run / "losses.png") as plot:
        assert plot.size == (1600, 450)  # two more panels: KID, diversity and copy rate
    assert "measuring in random-convnet-64" in text  # no Inception weights offline
    assert "(random-convnet-64)" in text


def test_the_best_checkpoint_is_kept_apart_and_is_the_lowest_kid(evaluated_run):
    rows = read_metrics(evaluated_run / "metrics.csv")
    kids = {int(row["step"]): float(row["kid"]) for row in rows}
    best = json.loads((evaluated_run / "checkpoints" / "best" / "best.json").read_text())
    assert best["step"] == min(kids, key=kids.get)
    assert best["kid"] == pytest.approx(min(kids.values()), rel=1e-5)
    assert best["features"] == "random-convnet-64"
    # The rolling checkpoints never count or delete it.
    from dcgan.storage.checkpoints import list_checkpoints

    assert all(path.name != "best" for _, path in list_checkpoints(evaluated_run / "checkpoints"))


def test_every_ckpt_command_accepts_the_best_checkpoint(evaluated_run, tmp_path):
    best = evaluated_run / "checkpoints" / "best"
    assert invoke("sample", "--ckpt", best, "-n", 2, "--out", tmp_path / "s").exit_code == 0
    result = invoke("interpolate", "--ckpt", best, "--steps", 3, "--out", tmp_path / "i")
    assert result.exit_code == 0, result.output
    result = invoke("export", "--ckpt", best, "--out", tmp_path / "g.keras")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", "--ckpt", best, "-n", 20, "--features", "random")
    assert result.exit_code == 0, result.output
    assert (evaluated_run / "eval" / "best-random-convnet-64.json").is_file()
    result = invoke("nearest", "--ckpt", best, "-n", 2, "-k", 2, "--rate-samples", 20)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("earlier_kid, replaced", [(-1.0, False), (1e9, True)])
def test_a_resumed_run_keeps_its_best_unless_it_beats_it(
    evaluated_run, tmp_path, earlier_kid, replaced
):
    run = copy_run(evaluated_run, tmp_path)
    best_json = run / "checkpoints" / "best" / "best.json"
    earlier = {"step": 3, "kid": earlier_kid, "features": "random-convnet-64"}
    best_json.write_text(json.dumps(earlier))
    result = invoke("train", "--resume", run, "--set", "train.steps=9")
    assert result.exit_code == 0, result.output
    after = callbacks.read_best(RunDir(run))
    if replaced:  # every KID of the resumed steps beats 1e9; the last evaluation wins
        kids = {int(row["step"]): float(row["kid"]) for row in read_metrics(run / "metrics.csv")}
        assert after["step"] == min((s for s in kids if s > 6), key=kids.get)
        assert after["kid"] == pytest.approx(kids[after["step"]], rel=1e-5)
    else:  # nothing beats -1
        assert after == earlier


def test_a_best_chosen_in_another_feature_space_is_replaced(evaluated_run, tmp_path):
    run = copy_run(evaluated_run, tmp_path)
    best_json = run / "checkpoints" / "best" / "best.json"
    # As if Inception weights were cached during an earlier part of the run.
    best_json.write_text(json.dumps({"step": 1, "kid": -1.0, "features": "inception_v3_pool"}))
    result = invoke("train", "--resume", run, "--set", "train.steps=9")
    assert result.exit_code == 0, result.output
    best = json.loads(best_json.read_text())
    assert best["features"] == "random-convnet-64" and best["step"] == 9
    assert "does not compare with random-convnet-64" in (run / "train.log").read_text()


def test_evaluate_nearest_and_training_agree_on_the_copy_rate(evaluated_run, tmp_path):
    run = copy_run(evaluated_run, tmp_path)  # the last checkpoint is the last evaluation's
    assert invoke("evaluate", "--ckpt", run, "-n", 12, "--features", "random").exit_code == 0
    (scored,) = (run / "eval").glob("step-*-random-convnet-64.json")
    result = invoke("nearest", "--ckpt", run, "-n", 2, "-k", 1, "--rate-samples", 12)
    assert result.exit_code == 0, result.output
    (near,) = (run / "nearest").glob("step-*.json")  # not best-*: another test's, copied
    evaluated, nearest = json.loads(scored.read_text()), json.loads(near.read_text())
    # The same 12 images of the evaluation latents against the same 64 training images:
    # not only the rate but every sample's nearest distance is the same.
    for key in ("copy_rate", "copy_threshold", "median_nearest_distance"):
        assert evaluated[key] == nearest[key], key
    logged = read_metrics(run / "metrics.csv")[-1]
    assert float(logged["copy_rate"]) == pytest.approx(evaluated["copy_rate"], abs=1e-6)


def test_nearest_writes_a_grid_of_samples_beside_their_neighbours(evaluated_run):
    result = invoke("nearest", "--ckpt", evaluated_run, "-n", 3, "-k", 2, "--rate-samples", 30)
    assert result.exit_code == 0, result.output
    assert "copy rate" in result.output
    (grid,) = (evaluated_run / "nearest").glob("step-*-seed-0.png")
    with Image.open(grid) as image:
        # 3 rows of a sample, a gap, 2 by pixels, a gap, 2 by features: 16 px images shown
        # 4x (64 px) with a 14 px caption under each, 2 px between, a 14 px title strip.
        # The last title, over two columns, is longer than they are: the table widens.
        from dcgan.metrics.features import RANDOM_NAME  # tests have no Inception weights

        drawn = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(f"nearest in {RANDOM_NAME}")
        width = max(2 + 7 * (64 + 2), 2 + 5 * 66 + int(np.ceil(drawn)) + 2)
        assert image.size == (width, 14 + 2 + 3 * (64 + 14 + 2))
        pixels = np.asarray(image.convert("L"))
    for column in (0, 2, 5):  # sample, nearest in pixels, nearest in features
        title = pixels[1:13, 2 + column * 66 : 2 + column * 66 + 40]
        assert (title < 128).any(), f"no title over column {column}"
    caption = pixels[16 + 64 : 16 + 78, 2 + 2 * 66 : 2 + 3 * 66]  # the first pixel neighbour
    assert (caption < 128).any()
    report = json.loads(grid.with_suffix(".json").read_text())
    assert report["samples"] == 30 and report["training_images"] == 64
    assert 0.0 <= report["copy_rate"] <= 1.0
    assert len(report["shown_nearest_pixel_distances"]) == 3
    assert len(report["shown_nearest_feature_distances"]) == 3


def test_nearest_finds_a_training_image_that_a_sample_copies(evaluated_run, tmp_path):
    from dcgan.data.sources import load_images
    from dcgan.metrics import evaluation

    real = load_images(_config(evaluated_run).data)

    class Copier:
        run, source, latent_dim, conditional = RunDir(evaluated_run), "copier", 2, False

        def images(self, latents, batch_size=64, classes=None):
            return real[np.arange(len(latents)) % 5 + 10]

    query = evaluation.NearestQuery(count=3, neighbours=2, rate_samples=20, seed=0)
    written, report = evaluation.write_nearest(
        Copier(), real, random_extractor(), query, tmp_path, force=False
    )
    assert report["copy_rate"] == 1.0
    assert report["shown_nearest_pixel_distances"] == [0.0, 0.0, 0.0]


def _config(run: Path):
    from dcgan.config import load

    return load(run / "config.yaml", check_data=False)


class _Tracker:
    def __init__(self, value: float):
        self.value = value

    def result(self):
        return self.value


class _Model:
    def __init__(self, accuracy: float):
        self.trackers = {"d_accuracy": _Tracker(accuracy)}


def test_collapse_and_a_winning_d_are_warned_and_not_repeated_for_twenty_rows(caplog):
    monitors = callbacks.Monitors()
    watch = callbacks.HealthWatch(every=10, start_step=0, monitors=monitors)
    watch.set_model(_Model(0.7))
    caplog.set_level(logging.WARNING, logger="dcgan")
    monitors.report(10, "diversity", 0.9)
    watch.on_train_batch_end(9)
    assert not caplog.records
    monitors.report(20, "diversity", 0.1)
    watch.on_train_batch_end(19)
    watch.on_train_batch_end(29)  # the same conditions: no repeat
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert "step 20: mode collapse?" in messages[0] and "0.10x as varied" in messages[0]
    monitors.report(40, "diversity", 0.8)
    watch.on_train_batch_end(39)
    monitors.report(50, "diversity", 0.1)
    watch.on_train_batch_end(49)  # collapsed again soon after: still quiet
    assert len(caplog.records) == 1
    watch.on_train_batch_end(219)  # 20 rows after the first warning: warned again
    assert len(caplog.records) == 2 and "step 220: mode collapse?" in caplog.records[1].message


def test_a_new_generator_that_has_not_varied_yet_is_not_called_collapsed(caplog):
    # 64 px colour shapes, paper defaults: diversity 0.02 at step 100, 0.03 at 200, 0.35 at
    # 300 and 0.52 at 400 (a healthy start), then a run that never varies.
    monitors = callbacks.Monitors()
    watch = callbacks.HealthWatch(every=100, start_step=0, monitors=monitors)
    watch.set_model(_Model(0.7))
    caplog.set_level(logging.WARNING, logger="dcgan")
    for step, diversity in ((100, 0.02), (200, 0.03), (300, 0.35), (400, 0.52)):
        monitors.report(step, "diversity", diversity)
        watch.on_train_batch_end(step - 1)
    assert not caplog.records
    stuck = callbacks.HealthWatch(every=100, start_step=0, monitors=monitors)
    stuck.set_model(_Model(0.7))
    for step in range(100, 1001, 100):
        monitors.report(step, "diversity", 0.05)
        stuck.on_train_batch_end(step - 1)
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "step 1000: mode collapse? the fixed noise's samples are 0.05x as varied as real "
        "images (below 0.3 in every grid since step 100)"
    )


def test_d_has_won_only_when_it_stays_at_99_percent_for_three_rows(caplog):
    watch = callbacks.HealthWatch(every=50, start_step=0, monitors=callbacks.Monitors())
    watch.set_model(_Model(0.7))
    caplog.set_level(logging.WARNING, logger="dcgan")
    accuracy = watch.model.trackers["d_accuracy"]
    # The digits default's own pattern: lone rows at 99% between lower ones, no warning.
    for step, value in zip(
        range(50, 351, 50), [1.0, 0.98, 0.991, 0.99, 0.96, 0.995, 0.997], strict=True
    ):
        accuracy.value = value
        watch.on_train_batch_end(step - 1)
    assert not caplog.records
    for step, value in [(400, 0.999), (450, 0.993)]:  # 0.995, 0.997, 0.999, ...: third row
        accuracy.value = value
        watch.on_train_batch_end(step - 1)
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "step 400: D has won: it classified at least 99.5% of real and fake images correctly "
        "in each of the last 3 metrics rows (150 steps), so G learns little."
    )


def test_the_copy_rate_warning_fires_when_the_rate_passes_the_limit_and_climbs(caplog, tmp_path):
    from dcgan.config import EvalConfig

    training = callbacks.Training(
        run=RunDir(tmp_path), objects={}, generator=lambda: None,
        monitors=callbacks.Monitors(), start_step=0, total_steps=100,
    )  # fmt: skip
    settings = EvalConfig(every=10, num_samples=10, copy_rate_warning=0.2)
    images = np.zeros((67, 4, 4, 1), np.uint8)
    evaluation = callbacks.Evaluation(training, settings, images, random_extractor())
    caplog.set_level(logging.WARNING, logger="dcgan")
    for step, rate in ((10, 0.05), (20, 0.3), (30, 0.5), (40, 0.4), (50, 0.45)):
        evaluation._warn_on_copies(step, rate)
    warned = [record.getMessage() for record in caplog.records]
    assert [message.split(":")[0] for message in warned] == ["step 20", "step 30", "step 50"]
    assert "30% of samples" in warned[0] and "(was 5%)" in warned[0]
    assert "copying its 67 training images" in warned[0]
