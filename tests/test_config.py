"""Config loading: defaults, overrides and one-line errors naming the file and key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from dcgan import config as config_module
from dcgan.config import base_and_depth, load
from dcgan.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_train_digits_with_paper_hyperparameters():
    config = load(None)
    assert config.data.source == "digits"
    assert config.train.g_lr == config.train.d_lr == 2e-4
    assert config.train.beta1 == 0.5
    assert config.model.init_std == 0.02
    assert config.model.leaky_slope == 0.2
    assert config.output.dir.is_absolute()


def test_config_is_frozen():
    config = load(None)
    with pytest.raises(Exception, match="frozen"):
        config.train.steps = 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "data:\n  image_sise: 32\n",
            r"exp.yaml: data.image_sise: unknown key \(did you mean 'image_size'\?\)",
        ),
        ("trian:\n  steps: 3\n", r"exp.yaml: trian: unknown key \(did you mean 'train'\?\)"),
        (
            "data:\n  image_size: '32'\n",
            r"exp.yaml: data.image_size: should be a whole number of pixels, or \[height, width\] "
            r"such as \[64, 128\] \(got '32'\)",
        ),
        (
            "train:\n  batch_size: 0\n",
            r"exp.yaml: train.batch_size: input should be greater than 0 \(got 0\)",
        ),
        ("train:\n  steps: 2.5\n", r"exp.yaml: train.steps: input should be a valid integer"),
        (
            "data:\n  image_size: 100\n",
            r"exp.yaml: data.image_size: 100 cannot be reached by doubling",
        ),
        (
            "data:\n  image_size: 32\nmodel:\n  depth: 2\n",
            r"exp.yaml: model.depth: 2 stride-2 blocks cannot reach",
        ),
        (
            "model:\n  arch: tutorial\n",
            r"exp.yaml: data.image_size: 32 is not reachable by model.arch 'tutorial'",
        ),
        ("data:\n  source: folder\n", r"exp.yaml: data.path: is required for data.source 'folder'"),
        (
            "data:\n  source: folder\n  path: /no/such/dir\n",
            r"exp.yaml: data.path: '/no/such/dir' does not exist",
        ),
        (
            "data:\n  source: imagenet\n",
            r"exp.yaml: data.source: input should be 'folder', 'digits'",
        ),
        ("data: [1, 2]\n", r"exp.yaml: data: must be a mapping of keys"),
        ("a: [1, 2\n", r"exp.yaml: invalid YAML \(line 2, column 1\)"),
        ("- 1\n- 2\n", r"exp.yaml: the config must be a mapping of keys, got list"),
        ("name: 'my run'\n", r"exp.yaml: name: string should match pattern"),
        ("model:\n  d_dropout: 1.5\n", r"exp.yaml: model.d_dropout: input should be less than 1"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected) as error:
        load(write(tmp_path, text))
    assert "\n" not in str(error.value)


def test_data_path_must_be_a_folder_for_folder_source(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    path = write(tmp_path, f"data:\n  source: folder\n  path: {tmp_path / 'file.txt'}\n")
    with pytest.raises(ConfigError, match=r"data.path: .* is not a folder"):
        load(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        load(tmp_path / "nope.yaml")


def test_overrides_are_typed_and_repeatable(tmp_path):
    path = write(tmp_path, "train:\n  steps: 10\n")
    config = load(path, ("train.steps=200", "train.g_lr=1e-4", "model.d_norm=none", "name=x1"))
    assert config.train.steps == 200
    assert config.train.g_lr == pytest.approx(1e-4)
    assert config.model.d_norm == "none"
    assert config.name == "x1"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.steps=abc", r"--set train.steps: input should be a valid integer \(got 'abc'\)"),
        (
            "train.stepz=3",
            r"--set train.stepz: unknown key 'train.stepz' \(did you mean 'steps'\?\)",
        ),
        ("train", r"--set 'train': expected key.sub=value"),
        ("train=3", r"--set train: 'train' is a section"),
        ("train.steps.x=3", r"--set train.steps.x: 'train.steps' has no sub-keys"),
        ("model.depth=2", r"--set model.depth: 2 stride-2 blocks cannot reach data.image_size 32"),
        (
            "train.r1_gamma=-1",
            r"--set train.r1_gamma: input should be greater than or equal to 0 \(got -1\)",
        ),
        (
            "train.r1_interval=0",
            r"--set train.r1_interval: input should be greater than or equal to 1 \(got 0\)",
        ),
    ],
)
def test_bad_override_names_the_flag(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load(None, (override,))


def test_frozen_keys_refuse_overrides():
    with pytest.raises(ConfigError, match=r"--set model.g_width: cannot be changed when resuming"):
        load(None, ("model.g_width=16",), frozen_keys=config_module.FROZEN_ON_RESUME)
    config = load(None, ("train.steps=9",), frozen_keys=config_module.FROZEN_ON_RESUME)
    assert config.train.steps == 9


def test_resolved_yaml_round_trips(tmp_path):
    config = load(None, ("train.steps=7", "data.image_size=64"))
    again = load(write(tmp_path, config.to_yaml()))
    assert again == config
    assert yaml.safe_load(config.to_yaml())["data"]["image_size"] == 64


@pytest.mark.parametrize(
    ("size", "depth", "expected"),
    [
        ((28, 28), None, ((7, 7), 2)),
        ((32, 32), None, ((4, 4), 3)),
        ((48, 48), None, ((3, 3), 4)),
        ((64, 64), None, ((4, 4), 4)),
        ((96, 96), None, ((3, 3), 5)),
        ((128, 128), None, ((4, 4), 5)),
        ((256, 256), None, ((4, 4), 6)),
        ((48, 48), 3, ((6, 6), 3)),
        ((96, 96), 4, ((6, 6), 4)),
        # Rectangles: the same number of doublings for both sides, the shorter base 3..7.
        ((64, 128), None, ((4, 8), 4)),
        ((128, 64), None, ((8, 4), 4)),
        ((48, 64), None, ((3, 4), 4)),
        ((28, 32), None, ((7, 8), 2)),
        ((96, 128), 4, ((6, 8), 4)),
    ],
)
def test_base_and_depth(size, depth, expected):
    assert base_and_depth(size, depth) == expected


@pytest.mark.parametrize(
    ("value", "expected", "shape"),
    [
        ("[64, 128]", (64, 128), (64, 128)),
        ("[32, 32]", 32, (32, 32)),  # a square given as two sides is the one number
        ("48", 48, (48, 48)),
    ],
)
def test_image_size_square_or_height_width(tmp_path, value, expected, shape):
    config = load(None, (f"data.image_size={value}",))
    assert (config.data.image_size, config.data.shape) == (expected, shape)
    # config.yaml round trip: the run's own config reads back as the same size.
    assert load(write(tmp_path, config.to_yaml()), ()).data.image_size == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "[30, 64]",
            "data.image_size: 30x64 cannot be reached by doubling: use each side base "
            "* 2**k with the same k >= 1 and the shorter side's base 3..7",
        ),
        ("[64, 128, 3]", "data.image_size: should be a whole number of pixels, or [height, width]"),
        ("[64, 0]", "data.image_size: 0 is not a size from 1 to the 1024 pixels allowed"),
        ("[64, 2048]", "data.image_size: 2048 is not a size from 1 to the 1024 pixels allowed"),
        ("[64, true]", "data.image_size: should be a whole number of pixels"),
    ],
)
def test_bad_rectangular_image_size(value, expected):
    with pytest.raises(ConfigError) as error:
        load(None, (f"data.image_size={value}",))
    assert f"--set {expected}" in str(error.value)


def test_config_loading_does_not_import_tensorflow():
    import subprocess

    code = (
        "import sys; from dcgan.config import load; load(None); "
        "import dcgan.cli; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize(
    "name",
    ["digits", "digits-conditional", "mnist", "cifar10", "stl10", "biked", "roses", "emoji"],
)
def test_every_shipped_config_validates(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs name data/<set> relative to the working dir
    for folder in ("data/biked", "data/roses", "data/stl10", "data/emoji"):
        (tmp_path / folder).mkdir(parents=True)
    config = load(CONFIGS / f"{name}.yaml")
    assert config.name == name
    assert config_module.inert_settings(config) == []  # every key shipped does something


def test_roses_config_turns_on_the_small_data_tools_and_others_keep_the_paper(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/roses").mkdir(parents=True)
    roses = load(CONFIGS / "roses.yaml")
    assert roses.train.diffaugment == ["color", "translation", "cutout"]
    assert roses.model.ema == 0.999
    digits = load(CONFIGS / "digits.yaml")
    assert digits.train.diffaugment == [] and digits.model.ema is None
    assert (digits.train.loss, digits.train.d_steps, digits.train.label_smoothing) == ("bce", 1, 0)
    assert digits.model.d_spectral_norm is False


def test_mnist_config_is_the_notebook():
    config = load(CONFIGS / "mnist.yaml")
    assert config.model.arch == "tutorial"
    assert (config.data.image_size, config.data.channels) == (28, 1)
    assert config.train.batch_size == 256
    assert config.train.g_lr == config.train.d_lr == 1e-4
    assert config.output.num_samples == 16
    assert config.train.steps == 50 * 235  # 50 epochs of ceil(60000 / 256) steps
    assert config.output.checkpoint_every == 15 * 235


def test_scientific_notation_reads_as_a_number(tmp_path):
    config = load(write(tmp_path, "train:\n  g_lr: 1e-4\n  d_lr: 3E-4\n"))
    assert config.train.g_lr == pytest.approx(1e-4) and config.train.d_lr == pytest.approx(3e-4)
    assert load(None, ("train.g_lr=5e-5",)).train.g_lr == pytest.approx(5e-5)


def test_the_emoji_config_holds_the_colour_preset_and_nothing_else(tmp_path, monkeypatch):
    """configs/emoji.yaml and `train --data` on a small colour folder of categories: the
    same models and training, key for key both ways, but for the budget (train.steps)."""
    from click.testing import CliRunner
    from conftest import random_pixels, save_image

    from dcgan.cli import main

    for category in ("flags", "smileys"):
        for i in range(3):
            path = tmp_path / "data/emoji" / category / f"{i}.png"
            save_image(path, random_pixels((64, 64, 3), seed=i))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", "data/emoji", "--dry-run"])
    assert result.exit_code == 0, result.output
    picked = yaml.safe_load(result.stdout)
    shipped = yaml.safe_load(load(CONFIGS / "emoji.yaml").to_yaml())
    assert (picked["train"].pop("steps"), shipped["train"].pop("steps")) == (5000, 30000)
    for section in ("model", "train", "eval"):
        assert picked[section] == shipped[section], section
    assert shipped["train"]["r1_gamma"] == 1.0 and shipped["model"]["upsample"] == "resize"


def test_settings_the_rest_of_the_config_leaves_without_effect_are_named():
    inert = config_module.inert_settings
    assert inert(load(None)) == []
    assert inert(load(None, ("train.ada_kimg=50", "model.resize_method=bilinear"))) == [
        "train.ada_kimg 50.0 has no effect: train.augment is 'none'",
        "model.resize_method bilinear has no effect: model.upsample is 'transpose'",
    ]
    assert inert(load(None, ("train.gp_weight=5", "train.max_rollbacks=9"))) == [
        "train.gp_weight 5.0 has no effect: train.loss is 'bce'",
        "train.max_rollbacks 9 has no effect: train.on_nan is 'stop'",
    ]
    used = ("train.augment=ada", "train.ada_kimg=50", "train.loss=wgan-gp", "train.gp_weight=5")
    assert inert(load(None, used[:2])) == [] and inert(load(None, used[2:] + (
        "model.d_norm=layer", "train.on_nan=rollback", "train.max_rollbacks=9",
        "model.upsample=resize", "model.resize_method=bilinear",
    ))) == []  # fmt: skip
