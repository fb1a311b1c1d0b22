"""Find a latent whose generated image matches a given one: Adam on z from several random
starts at once, on a pixel loss plus a feature loss, the best start kept (the idea of
StyleGAN2-ADA's projector, for a DCGAN's single z)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dcgan import imaging
from dcgan.metrics.features import FeatureExtractor
from dcgan.models.loaded import LoadedGenerator
from dcgan.runtime import compiled

FRAMES = 40  # progress.gif's frames, evenly over the steps


@dataclass(frozen=True)
class ProjectionSettings:
    steps: int = 300
    starts: int = 4  # random starting latents, optimised side by side
    learning_rate: float = 0.05
    feature_weight: float = 0.1  # of the feature loss beside the pixel loss
    seed: int = 0


@dataclass
class Projection:
    latent: np.ndarray  # float32 (1, latent_dim): `sample --z` gives image back from it
    class_index: int | None  # a conditional generator's class, given or found
    image: np.ndarray  # uint8 (H, W, C): generator.images(latent), as `sample` draws it
    psnr: float  # of image against the target, in dB
    # (step, uint8 image) of the best start along the way, for progress.gif
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (infinite when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def project(
    generator: LoadedGenerator,
    target: np.ndarray,
    extractor: FeatureExtractor,
    settings: ProjectionSettings = ProjectionSettings(),
    class_index: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Projection:
    """The latent (and, for a conditional generator without class_index, the class) whose
    image is nearest target, a uint8 image of the generator's shape, prepared as training
    images are."""
    import keras
    import tensorflow as tf

    classes = _classes_tried(generator, class_index)
    starts = settings.starts * len(classes)
    rng = np.random.default_rng(settings.seed)
    initial = rng.standard_normal((starts, generator.latent_dim)).astype(np.float32)
    z = tf.Variable(initial, name="projected_z")
    labels = None
    if classes != [None]:
        labels = tf.constant(np.repeat(np.array(classes, np.int32), settings.starts))
    wanted = tf.constant(imaging.from_uint8(target[None]))  # [-1, 1]
    wanted_features = extractor.embed(tf.constant(target[None].astype(np.float32)))
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    model = generator.model

    @compiled
    def step():
        with tf.GradientTape() as tape:
            images = model([z, labels] if labels is not None else z, training=False)
            losses = _losses(images, wanted, wanted_features, extractor, settings, z)
            total = tf.reduce_sum(losses)  # the starts are independent: one sum moves all
        optimizer.apply([tape.gradient(total, z)], [z])
        return losses, images

    every = max(1, settings.steps // FRAMES)
    frames = []
    for index in range(settings.steps):
        losses, images = step()
        if index % every == 0 or index == settings.steps - 1:
            best = int(tf.argmin(losses))
            frames.append((index + 1, imaging.to_uint8(images[best : best + 1])[0]))
        if on_step is not None:
            on_step(index + 1)
    final_losses, _ = _evaluate(model, z, labels, wanted, wanted_features, extractor, settings)
    best = int(np.argmin(final_losses))
    latent = z.numpy()[best : best + 1]
    chosen = classes[best // settings.starts]
    image = generator.images(latent, classes=None if chosen is None else np.array([chosen]))[0]
    return Projection(latent, chosen, image, psnr(image, target), frames)


def _classes_tried(generator: LoadedGenerator, class_index: int | None) -> list[int | None]:
    if not generator.conditional:
        return [None]
    if class_index is not None:
        return [class_index]
    return list(range(len(generator.classes)))  # every class: the best one is kept


def _losses(images, wanted, wanted_features, extractor, settings, z):
    """Per start: mean squared pixel error, plus the weighted mean squared error of the
    features (on their own scale), plus a light pull of z towards the Gaussian shell
    where G's training latents lay."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    pixel = tf.reduce_mean(tf.square(images - wanted), axis=[1, 2, 3])
    features = extractor.embed((images + 1.0) * 127.5)
    scale = tf.reduce_mean(tf.square(wanted_features)) + 1e-8
    feature = tf.reduce_mean(tf.square(features - wanted_features), axis=1) / scale
    shell = tf.square(tf.reduce_mean(tf.square(z), axis=1) - 1.0)
    return pixel + settings.feature_weight * feature + 1e-3 * shell


def _evaluate(model, z, labels, wanted, wanted_features, extractor, settings):
    images = model([z, labels] if labels is not None else z, training=False)
    return _losses(images, wanted, wanted_features, extractor, settings, z).numpy(), images


PROJECTION_FILES = ("z.npy", "projected.png", "compare.png", "progress.gif")


def write_projection(result: Projection, target: np.ndarray, folder) -> list:
    """folder/z.npy (float32 (1, latent_dim)), projected.png, compare.png (the target
    beside the result, captioned) and progress.gif (the best start as it moved)."""
    from dcgan.files import writing
    from dcgan.storage.latent_files import LatentWriter

    writing.make_folder(folder, "--out")
    paths = [folder / name for name in PROJECTION_FILES]
    saved = LatentWriter(paths[0], 1, result.latent.shape[1])
    saved.add(result.latent)
    saved.close()
    imaging.save_png(result.image, paths[1])
    compare = imaging.captioned_grid(
        [target, result.image],
        ["target", f"projected: {result.psnr:.1f} dB"],
        columns=2,
        titles={},
        min_side=128,
    )
    imaging.save_png(compare, paths[2])
    scale = imaging.scale_to_reach(*target.shape[:2], 128)  # so that the label fits
    frames = [
        imaging.label(imaging.enlarge(frame, scale), f"step {step}")
        for step, frame in result.frames
    ]
    imaging.save_gif(frames, paths[3], fps=10.0)
    return paths
