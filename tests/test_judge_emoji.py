"""scripts/judge_emoji.py on a tiny set of three colour categories the test draws."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script, save_image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}


@pytest.fixture(scope="module")
def judge_module():
    return load_script("judge_emoji")


def test_the_judge_tells_real_from_blurred_from_noise(judge_module, tmp_path):
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        for i in range(20):
            image = np.full((16, 16, 3), 255, np.uint8)
            top, left = rng.integers(0, 8, 2)
            image[top : top + 8, left : left + 8] = colour  # a coloured square on white
            save_image(tmp_path / "set" / name / f"{i}.png", image)
    images, labels, classes = judge_module.load_set(tmp_path / "set", size=16)
    assert classes == ["blue", "green", "red"] and len(images) == 60
    judge = judge_module.train_judge(images, labels, classes, epochs=30)
    assert judge.held_out_accuracy > 0.9  # three colours: easy
    train, held = judge_module.split(len(images))
    real = judge_module.scores(judge, images[held], images[train])
    soft = judge_module.scores(judge, judge_module.blurred(images[held], 3.0), images[train])
    noise = judge_module.scores(judge, judge_module.noise(len(held), (16, 16, 3)), images[train])
    assert real["frechet"] < noise["frechet"] and soft["frechet"] < noise["frechet"]
    assert real["covered"] == 3 and real["categories"] == 3
    # Held-out squares sit where training squares do: nearer than training images are to
    # each other, for some.
    assert 0.0 <= real["copy_rate"] <= 1.0 and noise["copy_rate"] == 0.0
