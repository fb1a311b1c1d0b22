"""Each objective against its closed form: known logits in, the exact value out."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.config import TrainConfig
from dcgan.runtime import import_tensorflow

tf = import_tensorflow()

from dcgan.models.losses import (  # noqa: E402
    LOSSES,
    Hinge,
    LeastSquares,
    Loss,
    NonSaturating,
    WassersteinGP,
    make_loss,
    scores_and_r1,
)

REAL = np.array([2.0, -1.0], np.float32)
FAKE = np.array([0.5, -3.0], np.float32)


def softplus(x):
    return np.log1p(np.exp(x))


def value(tensor) -> float:
    return float(tensor.numpy())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_bce_is_cross_entropy_with_a_smoothed_real_target(smoothing):
    loss = NonSaturating(label_smoothing=smoothing)
    target = 1.0 - smoothing
    # -t log s(x) - (1 - t) log(1 - s(x)) = t softplus(-x) + (1 - t) softplus(x)
    real = np.mean(target * softplus(-REAL) + (1 - target) * softplus(REAL))
    fake = np.mean(softplus(FAKE))
    assert value(loss.d_loss(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(real + fake)
    # G's loss is the non-saturating -log D(G(z)), never smoothed.
    assert value(loss.g_loss(tf.constant(FAKE))) == pytest.approx(np.mean(softplus(-FAKE)))


def test_hinge():
    loss = Hinge()
    # relu(1 - [2, -1]) = [0, 2]; relu(1 + [0.5, -3]) = [1.5, 0]
    assert value(loss.d_loss(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(1.0 + 0.75)
    assert value(loss.g_loss(tf.constant(FAKE))) == pytest.approx(1.25)


@pytest.mark.parametrize("smoothing, expected", [(0.0, 1.25 + 2.3125), (0.1, 1.205 + 2.3125)])
def test_least_squares(smoothing, expected):
    loss = LeastSquares(label_smoothing=smoothing)
    # 0.5 mean(([2, -1] - t)^2) + 0.5 mean([0.25, 9])
    assert value(loss.d_loss(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(expected)
    # 0.5 mean(([0.5, -3] - 1)^2) = 0.5 mean([0.25, 16])
    assert value(loss.g_loss(tf.constant(FAKE))) == pytest.approx(4.0625)


def test_wasserstein_scores():
    loss = WassersteinGP()
    assert value(loss.d_loss(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(-1.25 - 0.5)
    assert value(loss.g_loss(tf.constant(FAKE))) == pytest.approx(1.25)


IMAGES = (3, 2, 2, 1)  # four pixels an image: |grad| of c * sum(x) is 2c


@pytest.mark.parametrize("slope, expected", [(1.0, 10.0 * 1.0), (0.5, 0.0), (2.0, 10.0 * 9.0)])
def test_gradient_penalty_of_a_critic_with_a_known_gradient(slope, expected):
    def critic(images):
        return slope * tf.reduce_sum(images, axis=[1, 2, 3])

    real = tf.random.stateless_normal(IMAGES, (1, 2))
    fake = tf.random.stateless_normal(IMAGES, (3, 4))
    uniform = lambda shape: tf.random.stateless_uniform(shape, (5, 6))  # noqa: E731
    penalty = WassersteinGP(gp_weight=10.0).penalty(critic, real, fake, uniform)
    assert value(penalty) == pytest.approx(expected, abs=1e-4)


def test_gradient_penalty_is_taken_between_real_and_fake_images():
    """A critic sum(x^2) has gradient 2x: the penalty depends on where it is evaluated."""
    real = tf.fill(IMAGES, 1.0)
    fake = tf.fill(IMAGES, 0.0)

    def critic(images):
        return tf.reduce_sum(images**2, axis=[1, 2, 3])

    halfway = lambda shape: tf.fill(shape, 0.25)  # noqa: E731
    # between = 0.25 real + 0.75 fake = 0.25 everywhere; grad 0.5 per pixel; |grad| = 1.
    assert value(WassersteinGP(gp_weight=3.0).penalty(critic, real, fake, halfway)) == (
        pytest.approx(0.0, abs=1e-5)
    )
    near_real = lambda shape: tf.fill(shape, 1.0)  # noqa: E731
    # between = real: grad 2 per pixel, |grad| = 4: 3 * (4 - 1)^2
    assert value(WassersteinGP(gp_weight=3.0).penalty(critic, real, fake, near_real)) == (
        pytest.approx(27.0, rel=1e-5)
    )


@pytest.mark.parametrize("loss", [NonSaturating(), Hinge(), LeastSquares()])
def test_only_wgan_gp_has_a_penalty(loss):
    def never(*args):
        raise AssertionError("the penalty drew random numbers or ran the critic")

    assert value(loss.penalty(never, tf.zeros(IMAGES), tf.zeros(IMAGES), never)) == 0.0


@pytest.mark.parametrize(
    "loss, expected",
    [
        (NonSaturating(), 0.5),  # boundary 0: real [right, wrong], fake [wrong, right]
        (Hinge(), 0.5),
        (LeastSquares(), 0.75),  # boundary 0.5: fake 0.5 counts as fake
        (WassersteinGP(), 0.5),  # boundary -0.375, between the mean scores 0.5 and -1.25
    ],
)
def test_d_accuracy_is_the_share_on_the_right_side_of_the_boundary(loss, expected):
    assert value(loss.accuracy(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(expected)


def test_the_wgan_critic_is_judged_against_its_own_mean_scores():
    """All scores positive: a fixed boundary at 0 would call every fake real."""
    real, fake = tf.constant([3.0, 2.5]), tf.constant([2.0, 1.0])  # midpoint 2.125
    assert value(WassersteinGP().accuracy(real, fake)) == pytest.approx(1.0)
    assert value(NonSaturating().accuracy(real, fake)) == pytest.approx(0.5)


def test_bce_reports_probabilities_and_the_others_raw_scores():
    assert NonSaturating().as_reported(tf.constant([0.0])).numpy() == pytest.approx([0.5])
    for loss in (Hinge(), LeastSquares(), WassersteinGP()):
        assert loss.as_reported(tf.constant([3.0])).numpy() == pytest.approx([3.0])


def test_every_configurable_loss_has_an_object_that_takes_its_options():
    assert set(LOSSES) == set(TrainConfig.model_fields["loss"].annotation.__args__)
    assert make_loss("bce", label_smoothing=0.2) == NonSaturating(label_smoothing=0.2)
    assert make_loss("lsgan", label_smoothing=0.1) == LeastSquares(label_smoothing=0.1)
    assert make_loss("wgan-gp", gp_weight=5.0) == WassersteinGP(gp_weight=5.0)
    assert make_loss("hinge") == Hinge()


def test_the_training_step_uses_the_loss_object_it_is_given():
    """The step asks its loss for everything: a loss of constants shows in the metrics."""
    from dcgan.config import load
    from dcgan.models.adversarial import Objective
    from dcgan.training.loop import build_gan

    class Constant(Loss):
        def d_loss(self, real, fake):
            return 0.0 * tf.reduce_mean(real) + 7.0

        def g_loss(self, fake):
            return 0.0 * tf.reduce_mean(fake) + 3.0

    config = load(None, ("model.g_width=4", "model.d_width=4", "data.image_size=16"))
    gan = build_gan(config)
    gan.objective = Objective(loss=Constant())
    logs = gan.train_step(tf.zeros((4, 16, 16, 1)))
    assert float(logs["d_loss"]) == pytest.approx(7.0)
    assert float(logs["g_loss"]) == pytest.approx(3.0)


@pytest.mark.parametrize("slope, gamma", [(1.0, 1.0), (0.5, 10.0), (3.0, 0.1)])
def test_r1_of_a_critic_with_a_known_gradient(slope, gamma):
    """slope * sum(x) over four pixels: |grad|^2 = 4 slope^2, so R1 = 2 gamma slope^2."""

    def critic(images):
        return slope * tf.reduce_sum(images, axis=[1, 2, 3])

    real = tf.random.stateless_normal(IMAGES, (1, 2))
    scores, penalty = scores_and_r1(critic, real, gamma)
    np.testing.assert_allclose(scores.numpy(), critic(real).numpy(), rtol=1e-6)
    assert value(penalty) == pytest.approx(2.0 * gamma * slope**2, rel=1e-5)


def test_r1_is_taken_at_the_real_images():
    """sum(x^2) has gradient 2x: at x = 1.5 everywhere |grad|^2 = 4 pixels * 3^2 = 36."""
    real = tf.fill(IMAGES, 1.5)
    _, penalty = scores_and_r1(lambda x: tf.reduce_sum(x**2, axis=[1, 2, 3]), real, 2.0)
    assert value(penalty) == pytest.approx(0.5 * 2.0 * 36.0, rel=1e-5)


def test_r1_s_gradient_reaches_the_critic_s_weights():
    """w * sum(x): R1 = gamma / 2 * 4 w^2, so d R1 / dw = 4 gamma w (a second derivative
    through the inner gradient)."""
    weight = tf.Variable(0.75)
    real = tf.random.stateless_normal(IMAGES, (7, 8))
    with tf.GradientTape() as tape:
        _, penalty = scores_and_r1(lambda x: weight * tf.reduce_sum(x, axis=[1, 2, 3]), real, 3.0)
    assert value(tape.gradient(penalty, weight)) == pytest.approx(4 * 3.0 * 0.75, rel=1e-5)


def test_r1_off_adds_nothing():
    real = tf.ones(IMAGES)
    scores, penalty = scores_and_r1(lambda x: tf.reduce_sum(x, axis=[1, 2, 3]), real, 0.0)
    assert value(penalty) == 0.0
    np.testing.assert_allclose(scores.numpy(), [4.0, 4.0, 4.0])
