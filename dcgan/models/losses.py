"""One object per objective (train.loss): D's loss, G's loss and D's penalty in one place,
with how D's outputs read as a probability and as a decision. Logits in, scalars out: the
training step calls these and never asks which loss it has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf


def bce_with_logits(target: float, logits: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy against a constant target, from logits: stable for any logit."""
    labels = tf.fill(tf.shape(logits), tf.constant(target, logits.dtype))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


@dataclass(frozen=True)
class Loss:
    """The pair of losses of one GAN objective. decision: the output of D that separates
    "real" from "fake" for its accuracy; None when its scores have no fixed boundary (the
    WGAN critic), and the midpoint of the batch's mean real and fake scores is used."""

    name = "loss"
    decision: float | None = 0.0

    def d_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def g_loss(self, fake: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def penalty(
        self,
        critic: Callable[[tf.Tensor], tf.Tensor],
        real_images: tf.Tensor,
        fake_images: tf.Tensor,
        uniform: Callable[[list], tf.Tensor],
    ) -> tf.Tensor:
        """Added to D's loss; uniform(shape) draws from the step's random stream."""
        return tf.constant(0.0)

    def as_reported(self, outputs: tf.Tensor) -> tf.Tensor:
        """D's outputs as metrics.csv reports them (d_real, d_fake)."""
        return outputs

    def accuracy(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        """The share of real and fake images that D put on the right side of its boundary."""
        boundary = self.decision
        if boundary is None:
            boundary = 0.5 * (tf.reduce_mean(real) + tf.reduce_mean(fake))
        right = tf.concat(
            [tf.cast(real > boundary, tf.float32), tf.cast(fake <= boundary, tf.float32)], axis=0
        )
        return tf.reduce_mean(right)


@dataclass(frozen=True)
class NonSaturating(Loss):
    """The GAN paper's loss as DCGAN trains it: cross-entropy for D, with one-sided label
    smoothing (the real target 1 - label_smoothing); -log D(G(z)) for G."""

    name = "bce"
    label_smoothing: float = 0.0

    def d_loss(self, real, fake):
        return bce_with_logits(1.0 - self.label_smoothing, real) + bce_with_logits(0.0, fake)

    def g_loss(self, fake):
        return bce_with_logits(1.0, fake)

    def as_reported(self, outputs):
        return tf.sigmoid(outputs)  # D's probability that the image is real


@dataclass(frozen=True)
class Hinge(Loss):
    """The hinge loss of SAGAN and spectral-norm GANs (Lim and Ye, 2017)."""

    name = "hinge"

    def d_loss(self, real, fake):
        return tf.reduce_mean(tf.nn.relu(1.0 - real)) + tf.reduce_mean(tf.nn.relu(1.0 + fake))

    def g_loss(self, fake):
        return -tf.reduce_mean(fake)


@dataclass(frozen=True)
class LeastSquares(Loss):
    """LSGAN (Mao et al., 2017) with targets 0 and 1: D's decision lies halfway."""

    name = "lsgan"
    decision: float | None = 0.5
    label_smoothing: float = 0.0

    def d_loss(self, real, fake):
        target = 1.0 - self.label_smoothing
        return 0.5 * tf.reduce_mean((real - target) ** 2) + 0.5 * tf.reduce_mean(fake**2)

    def g_loss(self, fake):
        return 0.5 * tf.reduce_mean((fake - 1.0) ** 2)


@dataclass(frozen=True)
class WassersteinGP(Loss):
    """WGAN-GP (Gulrajani et al., 2017): the critic's score gap, and gp_weight times
    (|grad D(x)| - 1)^2 at random points between real and fake images."""

    name = "wgan-gp"
    decision: float | None = None
    gp_weight: float = 10.0

    def d_loss(self, real, fake):
        return tf.reduce_mean(fake) - tf.reduce_mean(real)

    def g_loss(self, fake):
        return -tf.reduce_mean(fake)

    def penalty(self, critic, real_images, fake_images, uniform):
        mix = uniform([tf.shape(real_images)[0], 1, 1, 1])
        between = mix * real_images + (1.0 - mix) * fake_images
        _, squared_norms = scores_and_input_gradients(critic, between)
        norms = tf.sqrt(squared_norms + 1e-12)
        return self.gp_weight * tf.reduce_mean((norms - 1.0) ** 2)


def scores_and_input_gradients(
    critic: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The critic's scores on images and, per image, |grad of its score w.r.t. the image|^2
    (float32): what WGAN-GP's and R1's penalties are made of. Called under D's tape, the
    gradient of anything made of them reaches D's weights."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        scores = critic(images)
        # Per image where D scores images alone; with BatchNorm, the batch's statistics
        # carry some of each image's gradient to the others.
        total = tf.reduce_sum(scores)
    grads = tf.cast(tape.gradient(total, images), tf.float32)
    return scores, tf.reduce_sum(grads**2, axis=list(range(1, grads.shape.rank)))


def scores_and_r1(
    critic: Callable[[tf.Tensor], tf.Tensor], real_images: tf.Tensor, gamma: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """D's scores on real images and the R1 penalty (Mescheder et al., 2018), gamma / 2 times
    the mean of |grad D(x)|^2 over the reals: it flattens D's surface at the data, so D
    cannot sharpen its edge there without bound. One pass of D serves both (a second would
    move BatchNorm's statistics twice). gamma 0: the scores alone, no tape."""
    if not gamma:
        return critic(real_images), tf.constant(0.0)
    scores, squared_norms = scores_and_input_gradients(critic, real_images)
    return scores, 0.5 * gamma * tf.reduce_mean(squared_norms)


LOSSES: dict[str, type[Loss]] = {
    loss.name: loss for loss in (NonSaturating, Hinge, LeastSquares, WassersteinGP)
}


def make_loss(name: str, label_smoothing: float = 0.0, gp_weight: float = 10.0) -> Loss:
    """The loss object for train.loss, with the options that belong to it (the config
    refuses label smoothing for the others)."""
    if name in ("bce", "lsgan"):
        return LOSSES[name](label_smoothing=label_smoothing)
    if name == "wgan-gp":
        return WassersteinGP(gp_weight=gp_weight)
    return LOSSES[name]()
