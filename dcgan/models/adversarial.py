"""The combined adversarial model: a keras.Model that owns G and D and trains both in fit()."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from dcgan.config import Config
from dcgan.data.augment import AdaController, adaptive, diff_augment
from dcgan.models.losses import Loss, NonSaturating, make_loss, scores_and_r1
from dcgan.runtime import compiled
from dcgan.storage.metrics_file import METRIC_NAMES


@dataclass(frozen=True)
class Objective:
    """What the adversarial game optimises: the loss object, D's updates per G update, and
    the augmentations every image D sees goes through."""

    loss: Loss = NonSaturating()
    d_steps: int = 1  # D updates per G update, each on its own batch of real images
    augment: tuple[str, ...] = ()  # DiffAugment policies
    # Weight of the mode-seeking term (Mao et al., 2019): G is rewarded when two latents of
    # the same class give images as far apart as the latents are. 0: off.
    mode_seeking: float = 0.0
    ada: AdaController | None = None  # adaptive augmentation (train.augment: ada)
    r1_gamma: float = 0.0  # weight of the R1 penalty on D's gradient at the reals; 0: off
    r1_interval: int = 1  # steps per R1 penalty (lazy R1 at r1_gamma * r1_interval)

    def images_per_step(self, batch_size: int) -> int:
        """Real images the data pipeline hands one training step: a batch per D update."""
        return batch_size * self.d_steps

    def d_batches(self, real: tf.Tensor | tuple) -> list:
        """A step's real images (with their classes, for a conditional run) as the batches
        of its D updates."""
        if isinstance(real, tuple):
            return list(zip(*(tf.split(part, self.d_steps) for part in real), strict=True))
        return tf.split(real, self.d_steps)


def objective_for(config: Config) -> Objective:
    """The objective train.* asks for."""
    train = config.train
    return Objective(
        loss=make_loss(train.loss, train.label_smoothing, train.gp_weight),
        d_steps=train.d_steps,
        augment=tuple(train.diffaugment),
        mode_seeking=train.mode_seeking,
        r1_gamma=train.r1_gamma,
        r1_interval=train.r1_interval,
        ada=(
            AdaController(train.ada_target, train.ada_interval, train.ada_kimg * 1000)
            if train.augment == "ada"
            else None
        ),
    )


class DivergenceGuard:
    """The first step whose losses were not finite, kept in the graph so that no step waits
    for the host, and read once per call into the training function. Never checkpointed: a
    checkpoint is finite."""

    def __init__(self):
        # Written by the first replica only: every replica computes the same values.
        counter = {"trainable": False, "aggregation": "only_first_replica"}
        self.step = keras.Variable(0, dtype="int64", name="diverged_at", **counter)  # 0: none
        self.losses = keras.Variable([0.0, 0.0], dtype="float32", name="diverged_losses", **counter)

    def watch(self, step, d_loss, g_loss) -> None:
        """In the step: keep step and the losses if they are the first that are not finite,
        on any replica. The losses are summed across replicas first (a NaN or inf anywhere
        stays one), so every replica sees the same flag and the first one's record names the
        bad loss."""
        losses = tf.stack([tf.cast(d_loss, tf.float32), tf.cast(g_loss, tf.float32)])
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            losses = context.all_reduce(tf.distribute.ReduceOp.SUM, losses)
        bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(losses)))
        first = tf.logical_and(bad, tf.equal(self.step.value, 0))
        self.step.assign(tf.where(first, step, self.step.value))
        self.losses.assign(tf.where(first, losses, self.losses.value))

    def read(self) -> tuple[int, str] | None:
        """(step, what) of the first step with a non-finite loss since the last reset, or
        None: one read of the device."""
        step = int(self.step.numpy())
        if step == 0:
            return None
        losses = dict(zip(("d_loss", "g_loss"), self.losses.numpy(), strict=True))
        bad = [
            f"{name} is {float(value)}" for name, value in losses.items() if not np.isfinite(value)
        ]
        # Never a StopIteration out of a callback: Keras would take it for the data's end.
        return step, bad[0] if bad else "a loss is not finite"

    def reset(self) -> None:
        self.step.assign(0)
        self.losses.assign([0.0, 0.0])


class DCGAN(keras.Model):
    """D(G(z)): one train_step makes objective.d_steps D updates on real and fake images,
    then a G update.

    The latents of a step are a pure function of (seed, step), so a checkpoint's step
    counter is all a resume needs to continue the noise stream, and every replica of a
    distributed run draws the same global batch of latents and takes its own slice: a
    mirrored run sees exactly the latents of a single-device run. DiffAugment's draws are
    keyed the same way.

    A conditional G and D (two inputs each: images or latents, and class indices) train on
    (images, classes) batches; the fakes of a step get the classes of its real batch (with
    mode seeking, the first half's classes twice, to make pairs), so G learns the classes
    in the proportions of the data.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        seed: int,
        objective: Objective = Objective(),
        ema_decay: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.conditional = len(generator.inputs) == 2
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.seed = seed
        self.objective = objective
        self.ema_decay = ema_decay
        # Written by the first replica only: every replica computes the same values.
        counter = {"trainable": False, "aggregation": "only_first_replica"}
        self.step = keras.Variable(0, dtype="int64", name="step", **counter)
        # Divergence rollbacks so far and the factor they left on the configured learning
        # rates: saved in checkpoints so that a resumed run keeps its lowered rates.
        self.rollbacks = keras.Variable(0, dtype="int64", name="rollbacks", **counter)
        self.lr_scale = keras.Variable(1.0, dtype="float32", name="lr_scale", **counter)
        self.divergence = DivergenceGuard()
        # ADA's augmentation probability, and the signs of D's outputs on reals (their sum
        # and count) since it last moved.
        self.ada_state = keras.Variable(
            [0.0, 0.0, 0.0], dtype="float32", name="ada_state", **counter
        )
        # The moving average of every generator weight (BatchNorm's statistics copied).
        self.ema_weights = (
            [
                keras.Variable(w.numpy(), name=f"ema_{i}", **counter)  # a copy, not an alias
                for i, w in enumerate(generator.weights)
            ]
            if ema_decay is not None
            else []
        )
        # One mean per column of metrics.csv, named as the column.
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        self._take_metrics = None  # compiled at the first metrics row
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
        return list(self.trackers.values())

    def take_metrics(self) -> list[tf.Tensor]:
        """The running averages (in metrics' order), then cleared: one call into the
        device instead of two eager ops per metric."""
        if self._take_metrics is None:
            self._take_metrics = compiled(self._results_then_reset)
        return self._take_metrics()

    def _results_then_reset(self) -> list[tf.Tensor]:
        results = [tf.identity(metric.result()) for metric in self.metrics]
        with tf.control_dependencies(results):
            for metric in self.metrics:
                metric.reset_state()
        return results

    def reset_metrics(self) -> None:
        """A no-op: fit() would clear the running averages at its start, but a resumed run
        restores them from its checkpoint, and MetricsLog clears them after each row."""

    def call(self, inputs, training: bool = False):
        return self.generator(inputs, training=training)

    def sampling_variables(self) -> list:
        """The generator weights that samples, evaluation and export use: the moving
        average when model.ema is on, the trained weights otherwise."""
        return list(self.ema_weights or self.generator.weights)

    def _key(self, *salt: int) -> tf.Tensor:
        key = tf.stack([tf.constant(self.seed, tf.int64), self.step.value])
        for value in salt:
            key = tf.random.experimental.stateless_fold_in(key, value)
        return key

    def _latents(self, batch_size, salt: tuple[int, ...] = ()):
        """This replica's slice of the step's global batch of latents."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        replica = context.replica_id_in_sync_group if context else 0
        every = tf.random.stateless_normal(
            (batch_size * replicas, self.latent_dim), seed=self._key(*salt)
        )
        return every[replica * batch_size : (replica + 1) * batch_size]

    def _d_sees(self, images, salt: int, classes=None, training: bool = True):
        """D's output for images (of classes, in a conditional run), through DiffAugment
        when it is on. Each replica draws its own transformations (salted by its id): they
        are per image anyway."""
        if self.objective.augment or self.objective.ada:
            context = tf.distribute.get_replica_context()
            replica = context.replica_id_in_sync_group if context else 0
            key = tf.random.experimental.stateless_fold_in(self._key(1000 + salt), replica)
            if self.objective.ada:
                images = adaptive(images, self.ada_p, key)
            else:
                images = diff_augment(images, self.objective.augment, key)
        inputs = [images, classes] if self.conditional else images
        return self.discriminator(inputs, training=training)

    def _fakes(self, latents, classes):
        inputs = [latents, classes] if self.conditional else latents
        return self.generator(inputs, training=True)

    def _scores_and_r1(self, critic, real_images):
        """D's scores on the reals and the R1 penalty this step pays: every step, or lazily
        on the steps 0, N, 2N ... (N = r1_interval) at gamma times N, chosen in the graph
        so that no step waits for the host."""
        gamma, interval = self.objective.r1_gamma, self.objective.r1_interval
        if not gamma or interval == 1:
            return scores_and_r1(critic, real_images, gamma)
        return tf.cond(
            tf.equal(self.step.value % interval, 0),
            lambda: scores_and_r1(critic, real_images, gamma * interval),
            lambda: scores_and_r1(critic, real_images, 0.0),
        )

    def _d_update(self, real_images, fake_images, salt: int, classes=None, fake_classes=None):
        """One D step on a batch of real and (detached) fake images, of classes in a
        conditional run (the fakes' own when given)."""
        d_vars = self.discriminator.trainable_variables
        loss = self.objective.loss
        fake_classes = classes if fake_classes is None else fake_classes
        with tf.GradientTape() as d_tape:
            # R1's gradient is taken through the augmentation, at the images as loaded
            # (as StyleGAN2-ADA does), with the same draw of it that the loss sees.
            real_out, r1 = self._scores_and_r1(
                lambda images: self._d_sees(images, 2 * salt, classes), real_images
            )
            fake_out = self._d_sees(fake_images, 2 * salt + 1, fake_classes)
            d_loss = (
                loss.d_loss(real_out, fake_out)
                + r1
                + loss.penalty(
                    lambda images: self._d_sees(images, 3000 + salt, classes),
                    real_images,
                    fake_images,
                    lambda shape: tf.random.stateless_uniform(shape, self._key(2000 + salt)),
                )
            )
            scaled_d_loss = _scaled(self.d_optimizer, d_loss)
        self.d_optimizer.apply(d_tape.gradient(scaled_d_loss, d_vars), d_vars)
        return d_loss, real_out, fake_out, r1

    def train_step(self, data):
        loss = self.objective.loss
        *extra_batches, real_batch = self.objective.d_batches(data)
        real_batch, classes = real_batch if self.conditional else (real_batch, None)
        batch_size = tf.shape(real_batch)[0]
        g_vars = self.generator.trainable_variables
        real_outs = []  # D's outputs on the reals of every update, for ADA's r_t
        for extra, batch in enumerate(extra_batches, start=1):
            reals, batch_classes = batch if self.conditional else (batch, None)
            fakes = self._fakes(self._latents(batch_size, (extra,)), batch_classes)
            real_outs.append(
                self._d_update(reals, tf.stop_gradient(fakes), extra, batch_classes)[1]
            )

        # One batch of fakes serves the last D update and the G update (as in PyTorch's
        # DCGAN example): G's forward pass is kept on g_tape while D steps on a detached
        # copy of it.
        latents = self._latents(batch_size)
        fake_classes = classes
        if self.objective.mode_seeking and self.conditional:
            # Pairs (i, i + half) share a class: the second half repeats the first's classes.
            half = batch_size // 2
            fake_classes = tf.concat([classes[:half], classes[:half], classes[2 * half :]], 0)
        with tf.GradientTape() as g_tape:
            fake_images = self._fakes(latents, fake_classes)
            with g_tape.stop_recording():
                d_loss, real_out, fake_out, r1 = self._d_update(
                    real_batch, tf.stop_gradient(fake_images), 0, classes, fake_classes
                )
            # The updated D judges the same fakes for G's step.
            g_loss = loss.g_loss(self._d_sees(fake_images, 999, fake_classes))
            objective = g_loss
            if self.objective.mode_seeking:
                objective += self.objective.mode_seeking * mode_seeking_loss(latents, fake_images)
            scaled_g_loss = _scaled(self.g_optimizer, objective)
        self.g_optimizer.apply(g_tape.gradient(scaled_g_loss, g_vars), g_vars)
        if self.ema_weights:
            self._update_ema()

        self.step.assign_add(1)
        if self.objective.ada:
            self._adapt([*real_outs, real_out])
        self.divergence.watch(self.step.value, d_loss, g_loss)
        self.trackers["d_loss"].update_state(d_loss)
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["d_real"].update_state(tf.reduce_mean(loss.as_reported(real_out)))
        self.trackers["d_fake"].update_state(tf.reduce_mean(loss.as_reported(fake_out)))
        self.trackers["d_accuracy"].update_state(loss.accuracy(real_out, fake_out))
        self.trackers["r1"].update_state(r1)
        results = {m.name: m.result() for m in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras averages a multi-worker step's outputs along axis 0, which a scalar
            # lacks (keras/src/backend/tensorflow/trainer.py, reduce_per_replica).
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    @property
    def ada_p(self) -> tf.Tensor:
        return self.ada_state[0]

    def _adapt(self, real_outs: list) -> None:
        """ADA's heuristic, in the graph: the signs of D's outputs on this step's reals,
        measured from the loss's decision boundary and gathered over every replica, move p
        (data.augment.AdaController)."""
        boundary = self.objective.loss.decision
        signs = tf.stack(
            [
                tf.add_n(
                    [
                        tf.reduce_sum(tf.sign(tf.cast(out, tf.float32) - boundary))
                        for out in real_outs
                    ]
                ),
                tf.add_n([tf.cast(tf.size(out), tf.float32) for out in real_outs]),
            ]
        )
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            signs = context.all_reduce(tf.distribute.ReduceOp.SUM, signs)
        self.ada_state.assign(
            self.objective.ada.advance(self.ada_state.value, signs, self.step.value)
        )

    def _update_ema(self):
        # Warm-up (as tf.train.ExponentialMovingAverage with num_updates): the average
        # forgets the random initial weights within the first hundreds of steps instead of
        # carrying decay**step of them.
        updates = tf.cast(self.step.value, tf.float32)
        decay = tf.minimum(
            tf.constant(self.ema_decay, tf.float32), (1.0 + updates) / (10.0 + updates)
        )
        for average, weight in zip(self.ema_weights, self.generator.weights, strict=True):
            if weight.trainable:
                average.assign(decay * average + (1.0 - decay) * weight)
            else:
                average.assign(weight)  # BatchNorm statistics: remeasured when sampled


def mode_seeking_loss(latents: tf.Tensor, images: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    """Mao et al. (2019), "Mode seeking GANs": 1 / (mean |G(z1) - G(z2)| / mean |z1 - z2|)
    over the pairs (i, i + half) of the batch, which G minimises: images that barely move
    when the latent does cost it. In a conditional run each pair shares its class."""
    half = tf.shape(latents)[0] // 2
    images = tf.cast(images, tf.float32)
    image_gap = tf.reduce_mean(tf.abs(images[:half] - images[half : 2 * half]))
    latent_gap = tf.reduce_mean(tf.abs(latents[:half] - latents[half : 2 * half]))
    return 1.0 / (image_gap / latent_gap + eps)


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
    config: Config,
    loss_scaling: bool = False,
    jit_compile: bool = False,
) -> DCGAN:
    """G and D as the adversarial model the config describes, compiled with one Adam each.
    loss_scaling: wrap both Adams in a LossScaleOptimizer (float16 needs it: small
    gradients underflow); jit_compile: XLA for the training step."""
    train = config.train

    def adam(lr: float, name: str) -> keras.optimizers.Optimizer:
        optimizer = keras.optimizers.Adam(lr, beta_1=train.beta1, beta_2=train.beta2, name=name)
        if loss_scaling:
            return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        return optimizer

    gan = DCGAN(
        generator,
        discriminator,
        seed=config.seed,
        objective=objective_for(config),
        ema_decay=config.model.ema,
    )
    gan.compile(
        d_optimizer=adam(train.d_lr, "d_adam"),
        g_optimizer=adam(train.g_lr, "g_adam"),
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
    G's moving average, and the running averages that the next metrics row will report."""
    return {
        "generator": gan.generator,
        "discriminator": gan.discriminator,
        "g_optimizer": inner_optimizer(gan.g_optimizer),
        "d_optimizer": inner_optimizer(gan.d_optimizer),
        "step": gan.step.value,
        "rollbacks": gan.rollbacks.value,
        "lr_scale": gan.lr_scale.value,
        "layer_random_states": random_states(gan.generator) + random_states(gan.discriminator),
        "ema_weights": [v.value for v in gan.ema_weights],
        "metric_states": [
            v.value for metric in gan.metrics[:4] for v in metric.variables
        ],  # the metrics every version had; later ones in OPTIONAL_STATES
        "accuracy_state": [v.value for v in gan.trackers["d_accuracy"].variables],
        "ada_state": gan.ada_state.value,
        "r1_state": [v.value for v in gan.trackers["r1"].variables],
    }


# Entries of checkpoint_objects that checkpoints of earlier versions lack: restored where
# present, so that an older run still resumes.
OPTIONAL_STATES = ("accuracy_state", "ada_state", "r1_state")


def nonfinite_variable(gan: DCGAN) -> str | None:
    """The path of the first weight or optimizer slot that holds a NaN or an infinity:
    checked on the device in one reduction, copied to the host only to name the culprit."""
    variables = [
        variable
        for variable in [
            *gan.generator.variables,
            *gan.discriminator.variables,
            *gan.g_optimizer.variables,
            *gan.d_optimizer.variables,
        ]
        if variable.dtype.startswith("float")
    ]
    if bool(_all_finite([v.value for v in variables])):
        return None
    return next(v.path for v in variables if not np.isfinite(v.numpy()).all())


@compiled
def _all_finite(values: list) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(value)) for value in values])
