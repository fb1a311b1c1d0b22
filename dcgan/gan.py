"""The combined adversarial model: a keras.Model that owns G and D and trains both in fit()."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def bce_with_logits(labels_value: float, logits: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy computed from logits, stable for any logit magnitude."""
    labels = tf.fill(tf.shape(logits), tf.constant(labels_value, logits.dtype))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class DCGAN(keras.Model):
    """D(G(z)): one train_step makes a D update on real and fake images, then a G update.

    The latents of a step are a pure function of (seed, step), so a checkpoint's step
    counter is all a resume needs to continue the noise stream, and every replica of a
    distributed run draws the same global batch of latents and takes its own slice: a
    mirrored run sees exactly the latents of a single-device run.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(generator.input_shape[-1])
        self.seed = seed
        # Written by the first replica only: every replica computes the same values.
        counter = {"trainable": False, "aggregation": "only_first_replica"}
        self.step = keras.Variable(0, dtype="int64", name="step", **counter)
        # Divergence rollbacks so far and the factor they left on the configured learning
        # rates: saved in checkpoints so that a resumed run keeps its lowered rates.
        self.rollbacks = keras.Variable(0, dtype="int64", name="rollbacks", **counter)
        self.lr_scale = keras.Variable(1.0, dtype="float32", name="lr_scale", **counter)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        # G and D are built; so is this model, whose call() takes latents, not the images
        # fit() would otherwise trace it with under a distribution strategy.
        self.built = True

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer,
        g_optimizer: keras.optimizers.Optimizer,
        **kwargs,
    ) -> None:
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built now, not at the first step, so a checkpoint can be restored into them.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def reset_metrics(self) -> None:
        """A no-op: fit() would clear the running averages at its start, but a resumed run
        restores them from its checkpoint, and MetricsLog clears them after each row."""

    def call(self, z, training: bool = False):
        return self.generator(z, training=training)

    def _latents(self, batch_size):
        """This replica's slice of the step's global batch of latents."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        replica = context.replica_id_in_sync_group if context else 0
        key = tf.stack([tf.constant(self.seed, tf.int64), self.step.value])
        every = tf.random.stateless_normal((batch_size * replicas, self.latent_dim), seed=key)
        return every[replica * batch_size : (replica + 1) * batch_size]

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables

        # One batch of fakes serves both updates (as in PyTorch's DCGAN example): G's
        # forward pass is kept on g_tape while D steps on a detached copy of it.
        with tf.GradientTape() as g_tape:
            fake_images = self.generator(self._latents(batch_size), training=True)
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                real_logits = self.discriminator(real_images, training=True)
                fake_logits = self.discriminator(tf.stop_gradient(fake_images), training=True)
                d_loss = bce_with_logits(1.0, real_logits) + bce_with_logits(0.0, fake_logits)
                scaled_d_loss = _scaled(self.d_optimizer, d_loss)
            with g_tape.stop_recording():
                self.d_optimizer.apply(d_tape.gradient(scaled_d_loss, d_vars), d_vars)
            # The updated D judges the same fakes for G's step.
            fake_logits_for_g = self.discriminator(fake_images, training=True)
            g_loss = bce_with_logits(1.0, fake_logits_for_g)
            scaled_g_loss = _scaled(self.g_optimizer, g_loss)
        self.g_optimizer.apply(g_tape.gradient(scaled_g_loss, g_vars), g_vars)

        self.step.assign_add(1)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        results = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras averages a multi-worker step's outputs along axis 0, which a scalar
            # lacks (keras/src/backend/tensorflow/trainer.py, reduce_per_replica).
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results


def _scaled(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: divided by the replicas, because the optimizer sums their
    gradients, and times the loss scale under float16 (apply() divides that out again)."""
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        loss = loss / context.num_replicas_in_sync
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The Adam inside a LossScaleOptimizer: checkpoints hold it alone, so that a run can
    resume under another precision."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def make_gan(
    generator: keras.Model,
    discriminator: keras.Model,
    *,
    seed: int,
    g_lr: float,
    d_lr: float,
    beta1: float,
    beta2: float,
    loss_scaling: bool = False,
    jit_compile: bool = False,
) -> DCGAN:
    """loss_scaling: wrap both Adams in a LossScaleOptimizer (float16 needs it: small
    gradients underflow); jit_compile: XLA for the training step."""

    def adam(lr: float, name: str) -> keras.optimizers.Optimizer:
        optimizer = keras.optimizers.Adam(lr, beta_1=beta1, beta_2=beta2, name=name)
        if loss_scaling:
            return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        return optimizer

    gan = DCGAN(generator, discriminator, seed=seed)
    gan.compile(
        d_optimizer=adam(d_lr, "d_adam"),
        g_optimizer=adam(g_lr, "g_adam"),
        jit_compile=jit_compile,
    )
    return gan


def set_learning_rates(gan: DCGAN, g_lr: float, d_lr: float) -> None:
    """The configured rates times the factor earlier rollbacks left (lr_scale)."""
    scale = float(gan.lr_scale.numpy())
    gan.g_optimizer.learning_rate = g_lr * scale
    gan.d_optimizer.learning_rate = d_lr * scale


def random_states(model: keras.Model) -> list:
    """The state of every SeedGenerator inside model (dropout's, say): Keras lists them
    among the variables, but tf.train.Checkpoint does not see them."""
    return [v.value for v in model.variables if v.path.endswith("seed_generator_state")]


def checkpoint_objects(gan: DCGAN) -> dict:
    """Everything a resume needs to continue as if never stopped, for tf.train.Checkpoint:
    weights, both Adam states, the step (which keys the latents), dropout's random streams,
    and the running averages
    that the next metrics row will report."""
    return {
        "generator": gan.generator,
        "discriminator": gan.discriminator,
        "g_optimizer": inner_optimizer(gan.g_optimizer),
        "d_optimizer": inner_optimizer(gan.d_optimizer),
        "step": gan.step.value,
        "rollbacks": gan.rollbacks.value,
        "lr_scale": gan.lr_scale.value,
        "layer_random_states": random_states(gan.generator) + random_states(gan.discriminator),
        "metric_states": [v.value for metric in gan.metrics for v in metric.variables],
    }


def nonfinite_variable(gan: DCGAN) -> str | None:
    """The path of the first weight or optimizer slot that holds a NaN or an infinity."""
    for variable in [
        *gan.generator.variables,
        *gan.discriminator.variables,
        *gan.g_optimizer.variables,
        *gan.d_optimizer.variables,
    ]:
        if variable.dtype.startswith("float") and not np.isfinite(variable.numpy()).all():
            return variable.path
    return None
