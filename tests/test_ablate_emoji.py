"""scripts/ablate_emoji.py: what the judge and the picture of a conditional row are shown,
a seed's own runs, the settings each row trains with, and the run each row reads."""

from __future__ import annotations

import numpy as np
from conftest import load_script


class ClassPainter:
    """A conditional generator whose every image is filled with its class index."""

    conditional = True
    latent_dim = 4

    def __init__(self, classes: list[str]):
        self.classes = classes

    def images(self, latents, batch_size=64, classes=None):
        assert len(classes) == len(latents)
        return np.broadcast_to(
            np.asarray(classes, np.uint8)[:, None, None, None], (len(latents), 2, 2, 3)
        )


def test_a_conditional_row_is_judged_at_the_data_s_category_sizes():
    ablate = load_script("ablate_emoji")
    judge_classes = ["animals", "flags", "people"]
    labels = np.repeat([0, 1, 2], [100, 300, 600])  # 10%, 30%, 60%
    generator = ClassPainter(["people", "animals", "flags"])  # another order than the judge's
    samples = ablate.judged_samples(generator, 4000, labels, judge_classes)
    assert samples.shape == (4000, 2, 2, 3)
    drawn = np.bincount(samples[:, 0, 0, 0], minlength=3) / 4000  # by generator index
    np.testing.assert_allclose(drawn, [0.6, 0.1, 0.3], atol=0.03)


def test_a_seed_other_than_0_trains_and_reads_runs_of_its_own():
    ablate = load_script("ablate_emoji")
    row = next(row for row in ablate.ROWS if row.key == "resize-raw")
    assert row.run_name(0) == "resize" and row.run_name(1) == "resize-seed1"


def test_a_conditional_row_s_picture_has_a_labelled_strip_per_class():
    ablate = load_script("ablate_emoji")
    picture = ablate.by_class(ClassPainter(["animals", "flags", "people"]), per_class=4)
    tile = 2 + 2  # the painter's 2-pixel images, a 2-pixel gap
    strip = tile + 2 + 14  # the grid's outer gap and the label underneath
    assert picture.shape[0] == 3 * strip
    for index in range(3):  # the strip's class painted in every tile, in class order
        assert (picture[index * strip + 2 : index * strip + 4, 2:4] == index).all()


def test_every_row_trains_a_valid_config_with_its_own_settings_last(tmp_path):
    from dcgan.config import load
    from dcgan.data.preset import COLOUR_SETTINGS

    ablate = load_script("ablate_emoji")
    preset = ("--data", COLOUR_SETTINGS)  # what `dcgan train --data` starts the rows from
    trained = [row for row in ablate.ROWS if row.run is None]
    configs = {
        row.key: load(None, ablate.row_settings(row, 1, tmp_path), check_data=False, preset=preset)
        for row in trained
    }
    assert configs["ada"].model.ema == 0.99 and configs["ema995"].model.ema == 0.995
    assert configs["fast-ema998"].model.ema == 0.998
    assert configs["fast-ema998"].train.g_lr == configs["fast-ema998"].train.d_lr == 4e-4
    assert configs["paper"].model.upsample == "transpose"
    assert configs["ada"].model.upsample == "resize" and configs["ada"].train.augment == "ada"
    # The paper's rates unless a row says otherwise, whatever the preset picks today.
    assert configs["ada"].train.g_lr == configs["ada"].train.d_lr == 2e-4
    assert all(c.seed == 1 and c.train.steps == ablate.STEPS for c in configs.values())
    assert configs["conditional"].name == "conditional-seed1"


def test_a_row_reads_its_own_run_not_another_whose_name_ends_like_it(tmp_path):
    ablate = load_script("ablate_emoji")
    for run in ("00000-ema995", "00001-fast-ema995"):
        checkpoint = tmp_path / run / "checkpoints" / f"step-{ablate.STEPS:07d}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "ckpt.index").write_bytes(b"")  # what makes a checkpoint whole
    assert ablate.find_run(tmp_path, "ema995") == tmp_path / "00000-ema995"
    assert ablate.find_run(tmp_path, "fast-ema995") == tmp_path / "00001-fast-ema995"
