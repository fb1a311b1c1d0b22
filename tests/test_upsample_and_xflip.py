"""model.upsample resize (Odena et al., 2016) and data.xflip (mirrored copies)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import run_dirs, save_image, tiny_config, write_config

from dcgan.cli import main
from dcgan.config import Config, DataConfig, load
from dcgan.data.sources import load_labelled
from dcgan.errors import ConfigError


def generator_layers(**model) -> tuple[list[str], tuple]:
    from dcgan.models.networks import build_generator

    config = Config.model_validate(
        {"data": {"image_size": [16, 32]}, "model": {"g_width": 8, "latent_dim": 8, **model}}
    )
    generator = build_generator(config)
    return [type(layer).__name__ for layer in generator.layers], generator.output_shape


def test_resize_upsampling_replaces_every_transposed_convolution():
    kinds, shape = generator_layers(upsample="resize")
    assert "Conv2DTranspose" not in kinds and shape == (None, 16, 32, 1)
    assert kinds.count("UpSampling2D") == kinds.count("Conv2D") == 2  # 4x8 -> 8x16 -> 16x32
    kinds, shape = generator_layers()
    assert kinds.count("Conv2DTranspose") == 2 and "UpSampling2D" not in kinds
    from dcgan.models.networks import build_generator

    config = Config.model_validate(
        {"model": {"upsample": "resize", "resize_method": "bilinear", "g_width": 8}}
    )
    resize = build_generator(config).get_layer("up1_resize")
    assert resize.interpolation == "bilinear"


def test_a_resized_g_makes_no_checkerboard_from_a_flat_start():
    """Fed a constant, a resize-convolution layer gives a constant inside the picture (every
    output pixel sees the same inputs); a stride-2 transposed convolution alternates
    between the four phases of its kernel: the checkerboard."""
    import keras

    from dcgan.models.networks import _upsampled

    rng = np.random.default_rng(0)
    for kind, checkered in (("transpose", True), ("resize", False)):
        flat = keras.Input((4, 4, 3))
        model_config = Config.model_validate({"model": {"upsample": kind}}).model
        layer_model = keras.Model(flat, _upsampled(flat, 1, model_config, "glorot_uniform",
                                                     False, "up"))  # fmt: skip
        for layer in layer_model.layers[1:]:
            layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
        out = layer_model(np.ones((1, 4, 4, 3), np.float32)).numpy()[0, 2:-2, 2:-2, 0]
        spread = out.max() - out.min()
        assert (spread > 1e-3) == checkered, (kind, spread)


def test_upsample_is_refused_for_the_tutorial_arch(tmp_path):
    raw = {"model": {"arch": "tutorial", "upsample": "resize"}, "data": {"image_size": 28}}
    with pytest.raises(ConfigError, match="model.upsample: applies to model.arch 'dcgan'"):
        load(write_config(tmp_path, raw))


def test_a_resize_run_trains_and_samples(tmp_path):
    config = tiny_config(tmp_path, model={"upsample": "resize", "latent_dim": 8})
    result = CliRunner().invoke(main, ["train", "--config", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    result = CliRunner().invoke(main, ["sample", "--ckpt", str(run), "-n", 2])
    assert result.exit_code == 0, result.output


def test_xflip_adds_the_mirror_image_of_every_picture_with_its_class(tmp_path):
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        for i in range(3):
            image = np.zeros((8, 8, 3), np.uint8)
            image[:, :2] = colour  # a stripe on the left: its mirror has it on the right
            save_image(tmp_path / "pics" / name / f"{i}.png", image)
    data = DataConfig(source="folder", path=tmp_path / "pics", image_size=8, channels=3,
                      classes=["a", "b"], xflip=True)  # fmt: skip
    images, labels = load_labelled(data)
    assert len(images) == 12 and labels.tolist() == [0, 1, 0, 1, 0, 1] * 2  # classes take turns
    np.testing.assert_array_equal(images[6:], images[:6, :, ::-1])
    assert images[0, 0, 0].tolist() == [255, 0, 0] and images[6, 0, 7].tolist() == [255, 0, 0]
    plain = load_labelled(data.model_copy(update={"xflip": False}))[0]
    assert len(plain) == 6
