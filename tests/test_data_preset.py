"""`dcgan train --data PATH`: settings picked from a folder's own images, no YAML."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import random_pixels, run_dirs, save_image

from dcgan.cli import main


def dry_run(folder, *extra) -> tuple[dict, str]:
    result = CliRunner().invoke(main, ["train", "--data", str(folder), "--dry-run", *extra])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout), result.stderr


def make_folder(root, count: int, shape: tuple[int, ...], mode: str | None = None, name="pics"):
    folder = root / name
    for i in range(count):
        save_image(folder / f"{i:04d}.png", random_pixels(shape, seed=i), mode)
    return folder


def test_wide_colour_folder_trains_at_its_own_aspect(tmp_path):
    folder = make_folder(tmp_path, 6, (40, 120, 3), name="side views")
    config, told = dry_run(folder)
    data = config["data"]
    # Short side 40 -> 32 (the largest of 32, 48, 64 ... within it); 3:1 -> [32, 96].
    assert (data["image_size"], data["channels"], data["resize"]) == ([32, 96], 3, "crop")
    assert data["source"] == "folder" and data["path"] == str(folder.absolute())
    assert config["name"] == "side-views"
    assert "data.image_size [32, 96] (height, width): wider than square" in told
    # A small colour folder: the emoji ablation's winner, and why.
    assert config["model"]["upsample"] == "resize" and config["model"]["ema"] == 0.995
    assert config["train"]["augment"] == "ada" and config["train"]["ada_kimg"] == 100
    assert config["train"]["g_lr"] == config["train"]["d_lr"] == 4e-4
    assert config["train"]["r1_gamma"] == 1.0 and config["train"]["r1_interval"] == 1
    assert config["model"]["d_spectral_norm"] is False and config["train"]["loss"] == "bce"
    assert config["train"]["diffaugment"] == []
    assert "small colour folder (under 10,000 images): model.upsample resize" in told


def test_a_small_gray_folder_gets_diffaugment_and_ema(tmp_path):
    config, told = dry_run(make_folder(tmp_path, 6, (64, 64), "L"))
    assert config["train"]["diffaugment"] == ["color", "translation", "cutout"]
    assert config["model"]["ema"] == 0.99 and config["train"]["augment"] == "none"
    assert config["model"]["upsample"] == "transpose"
    assert "small data (under 2,000 images)" in told


def test_larger_colour_folders_get_diffaugment_and_gray_ones_train_plain(tmp_path, monkeypatch):
    from dcgan.data import preset

    monkeypatch.setattr(preset, "SMALL_DATA", 4)  # 5 images count as a large folder here
    monkeypatch.setattr(preset, "SMALL_COLOUR", 4)
    colour, told = dry_run(make_folder(tmp_path, 5, (64, 64, 3)))
    assert colour["train"]["diffaugment"] == ["color", "translation", "cutout"]
    assert colour["model"]["ema"] is None and "small data" not in told
    assert "colour: train.diffaugment color, translation, cutout, so that D does not win" in told
    gray, told = dry_run(make_folder(tmp_path, 5, (64, 64), "L", name="gray"))
    assert gray["train"]["diffaugment"] == [] and gray["model"]["ema"] is None


def test_gray_square_folder(tmp_path):
    folder = make_folder(tmp_path, 5, (70, 66), "L")
    config, told = dry_run(folder)
    assert (config["data"]["image_size"], config["data"]["channels"]) == (64, 1)
    assert "data.channels 1: the images are gray" in told


def test_colour_files_with_gray_pixels_train_gray(tmp_path):
    gray = random_pixels((64, 64, 1), seed=3)
    for i in range(5):
        save_image(tmp_path / "scans" / f"{i}.png", np.repeat(gray, 3, axis=2))
    config, _ = dry_run(tmp_path / "scans")
    assert config["data"]["channels"] == 1


def test_mixed_aspects_are_padded_not_cut(tmp_path):
    folder = make_folder(tmp_path, 4, (64, 64, 3))
    for i in range(4):  # as many wide ones: whichever shape trains, half would be cut
        save_image(folder / f"wide{i}.png", random_pixels((64, 160, 3), seed=10 + i))
    config, told = dry_run(folder)
    assert config["data"]["resize"] == "pad"
    assert "differ from that shape by more than 10%, so they are padded, not cut" in told


def test_set_overrides_the_preset(tmp_path):
    folder = make_folder(tmp_path, 5, (64, 64, 3))
    config, _ = dry_run(folder, "--set", "data.image_size=32", "--set", "model.ema=null")
    assert config["data"]["image_size"] == 32 and config["model"]["ema"] is None


def test_the_preset_s_choices_a_set_changes_are_named(tmp_path):
    folder = make_folder(tmp_path, 5, (64, 64, 3))
    _, told = dry_run(folder)
    assert "not the preset's" not in told  # nothing changed, nothing told
    _, told = dry_run(
        folder, "--set", "model.upsample=transpose", "--set", "train.diffaugment=[color]",
        "--set", "name=mine", "--set", "model.g_width=64", "--set", "train.steps=70",
    )  # fmt: skip
    changed = [line for line in told.splitlines() if "not the preset's" in line]
    assert changed == [
        "dcgan: note: name mine, not the preset's pics",
        "dcgan: note: model.upsample transpose, not the preset's resize",
        "dcgan: note: train.steps 70, not the preset's 5000",
        # DiffAugment took the place of the preset's ADA; its ada_kimg went with it.
        "dcgan: note: train.augment none, not the preset's ada",
    ]  # g_width 64 is what the preset picked: not a change


def test_the_augmentation_set_by_the_user_replaces_the_preset_s(tmp_path, monkeypatch):
    colour = make_folder(tmp_path, 5, (64, 64, 3))
    config, _ = dry_run(colour, "--set", "train.diffaugment=[color, cutout]")
    assert config["train"]["diffaugment"] == ["color", "cutout"]
    assert config["train"]["augment"] == "none" and config["train"]["ada_kimg"] == 500
    config, told = dry_run(colour, "--set", "train.augment=none")
    assert config["train"]["augment"] == "none" and config["train"]["diffaugment"] == []
    # The preset's ADA settings went with its ADA: nothing is left without effect.
    assert config["train"]["ada_kimg"] == 500 and "has no effect" not in told
    _, told = dry_run(colour, "--set", "train.augment=none", "--set", "train.ada_kimg=50")
    assert "dcgan: note: train.ada_kimg 50.0 has no effect: train.augment is 'none'" in told
    gray = make_folder(tmp_path, 5, (64, 64), "L", name="gray")
    config, _ = dry_run(gray, "--set", "train.augment=ada")
    assert config["train"]["augment"] == "ada" and config["train"]["diffaugment"] == []
    # Both at once, the user's own contradiction, is still one line naming them.
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(colour), "--dry-run", "--set", "train.augment=ada",
         "--set", "train.diffaugment=[color]"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "train.augment: 'ada' and train.diffaugment both augment" in result.output


def test_the_run_keeps_the_settings_to_edit_and_train_again(tmp_path, monkeypatch):
    folder = make_folder(tmp_path, 6, (24, 48, 3))
    monkeypatch.chdir(tmp_path)
    tiny = ["model.g_width=4", "model.d_width=4", "model.latent_dim=4", "train.steps=2",
            "train.batch_size=4", "output.sample_every=2", "output.log_every=2",
            "output.checkpoint_every=2", "eval.every=null"]  # fmt: skip
    args = ["train", "--data", str(folder)] + [a for key in tiny for a in ("--set", key)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["image_size"] == [32, 64] and saved["model"]["g_width"] == 4
    assert f"its settings are in {run.relative_to(tmp_path)}/config.yaml" in result.output
    again = CliRunner().invoke(main, ["train", "--config", str(run / "config.yaml"), "--dry-run"])
    assert again.exit_code == 0, again.output
    assert yaml.safe_load(again.stdout) == saved


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "{tmp}/none"], "Error: --data {tmp}/none: no such folder"),
        (["--data", "{tmp}/file.png"], "Error: --data {tmp}/file.png: not a folder"),
        (["--data", "{tmp}/empty"], "Error: --data {tmp}/empty: no image files"),
        (["--data", "{tmp}/junk"], "Error: --data {tmp}/junk: 2 of the 2 images looked at"),
        (
            ["--data", "{tmp}/empty", "--config", "x.yaml"],
            "Error: --config and --data exclude each other",
        ),
        (["--data", "{tmp}/empty", "--resume", "r"], "Error: --data and --resume exclude"),
    ],
)
def test_bad_data_folder_is_one_line(tmp_path, args, expected):
    save_image(tmp_path / "file.png", random_pixels((8, 8, 3)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "junk" / name).write_bytes(b"not a picture")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        result.output.strip().splitlines()[-1].startswith(expected.replace("{tmp}", str(tmp_path)))
    )


def test_class_sub_folders_bring_a_tip_for_a_conditional_run(tmp_path):
    kinds = tmp_path / "kinds"
    for kind in ("cats", "dogs", "owls"):
        make_folder(kinds, 3, (64, 64, 3), name=kind)
    config, told = dry_run(kinds)
    assert config["model"]["conditional"] is False  # a tip, not a choice
    tips = [line for line in told.splitlines() if line.startswith("dcgan: tip:")]
    assert tips == [
        "dcgan: tip: the images are in 3 sub-folders (cats, dogs, owls): if each holds one "
        "kind of picture, `--set model.conditional=true` trains one class per sub-folder, and "
        "`dcgan sample --class NAME` draws that kind (on the emoji's categories, smileys and "
        "flags read as such by step 2,000: README, Colour pictures)"
    ]
    config, told = dry_run(kinds, "--set", "model.conditional=true")
    assert config["data"]["classes"] == ["cats", "dogs", "owls"] and "tip:" not in told


@pytest.mark.parametrize(
    "layout",
    [
        {"": 3},  # no sub-folders
        {"cats": 3},  # one
        {"cats": 3, "dogs": 3, "": 1},  # an image belongs to no class
        {"cats": 3, "dogs": 3, "empty": 0},  # a class without images
        {"cats": 3, "dogs": 3, "dogs/puppies": 2},  # deeper folders still read
    ],
)
def test_the_tip_only_where_a_conditional_run_takes_the_sub_folders(tmp_path, layout):
    root = tmp_path / "pics"
    for where, count in layout.items():
        (root / where).mkdir(parents=True, exist_ok=True)
        make_folder(root, count, (64, 64, 3), name=where)
    _, told = dry_run(root)
    deep = "dogs/puppies" in layout  # classes cats, dogs: every image is in one of them
    assert ("dcgan: tip:" in told) == deep, told


def test_the_dry_run_names_files_that_do_not_open(tmp_path):
    folder = make_folder(tmp_path, 6, (32, 32, 3))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not a picture\n")
    _, told = dry_run(folder)
    assert "2 of the 8 files looked at do not open as pictures (first: empty.png: " in told
    assert "training skips such files and counts them" in told
    _, told = dry_run(make_folder(tmp_path, 6, (32, 32, 3), name="clean"))
    assert "do not open" not in told


def test_a_bad_set_with_data_is_one_line_before_any_settings(tmp_path):
    folder = make_folder(tmp_path, 6, (32, 32, 3))
    result = CliRunner().invoke(
        main, ["train", "--data", str(folder), "--set", "train.stepz=20", "--dry-run"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --set train.stepz: unknown key 'train.stepz' (did you mean 'steps'?)"
    ]


def test_a_folder_of_few_images_is_told_how_often_each_is_shown(tmp_path, monkeypatch):
    from dcgan.data import preset

    folder = make_folder(tmp_path, 30, (32, 32, 3))
    _, told = dry_run(folder)
    (caution,) = [line for line in told.splitlines() if "only 30 images" in line]
    # 5,000 steps of 64 over 30 images: 320,000 / 30 = 10,666.7 showings each.
    assert caution.startswith("dcgan: note: only 30 images: 5,000 steps of 64 show each about ")
    assert "about 10,667 times, and a GAN on so few learns to copy them" in caution
    assert "`--set train.init_from=RUN --set train.freeze_d=2` fine-tunes it" in caution
    # The run as configured: the --sets' steps and batch, not the preset's.
    _, told = dry_run(folder, "--set", "train.steps=300", "--set", "train.batch_size=16")
    assert "only 30 images: 300 steps of 16 show each about 160 times" in told
    # Starting from another run already is what the hint proposes.
    said = preset.few_images_caution(30, 300, 16, init_from=tmp_path / "big-run")
    assert said is not None and "160 times" in said and "init_from" not in said
    monkeypatch.setattr(preset, "FEW_IMAGES", 30)
    _, told = dry_run(folder)
    assert "only 30" not in told and "learns to copy" not in told
