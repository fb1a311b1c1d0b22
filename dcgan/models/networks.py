"""Generator and discriminator built from the config.

arch 'dcgan' follows Radford et al. (2015): project z to base x base, then stride-2
transposed convolutions that halve the filters while doubling the size, BatchNorm and ReLU
in G (none on its output, which is tanh), stride-2 convolutions with LeakyReLU in D
(no normalisation on its input layer), no pooling, weights from N(0, 0.02).
arch 'tutorial' is the TensorFlow MNIST notebook's pair of networks, layer for layer.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dcgan.config import Config, base_and_depth
from dcgan.models.latents import balanced_classes


def build_generator(
    config: Config, sync_norm: bool = False, fused_norm: bool = True
) -> keras.Model:
    """G in Keras' current dtype policy. sync_norm: BatchNorm moments over the global batch
    of all replicas, so that a distributed run normalises as one device with the same batch
    would; fused_norm: FusedBatchNormalization (faster to train) instead of Keras' own."""
    batch_norm = _batch_norm(sync_norm, fused_norm)
    if config.model.arch == "tutorial":
        return _tutorial_generator(config, batch_norm)
    return _dcgan_generator(config, batch_norm)


def build_discriminator(
    config: Config, sync_norm: bool = False, fused_norm: bool = True
) -> keras.Model:
    batch_norm = _batch_norm(sync_norm, fused_norm)
    if config.model.arch == "tutorial":
        return _tutorial_discriminator(config, _spectral_wrapper(config.model.d_spectral_norm))
    return _dcgan_discriminator(config, batch_norm)


def freeze_blocks(discriminator: keras.Model, count: int) -> None:
    """Freeze-D (Mo et al., 2020): the convolutions of D's first count stride-2 blocks stop
    training, keeping the features a run started from had learned. Their BatchNorm keeps
    normalising by the batch and learning its scale and offset: a frozen Keras BatchNorm
    would switch to the moving statistics of the other run's data."""
    for i in range(1, count + 1):
        for layer in discriminator.layers:
            if layer.name in (f"down{i}", f"down{i}_sn"):
                layer.trainable = False


def inference_generator(config: Config, weights_from: keras.Model | None = None) -> keras.Model:
    """G in float32 and in Keras' own layers, whatever the training precision: what
    generator.keras and exports hold (loadable without dcgan) and what sampling runs."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        generator = build_generator(config, fused_norm=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if weights_from is not None:
        generator.set_weights(weights_from.get_weights())
    return generator


STANDING_SEED = 2**31 - 2  # latents of their own, apart from samples' and evaluation's
STANDING_LATENTS = 1024


def standing_statistics(generator: keras.Model, batch_size: int = 128) -> None:
    """Set G's BatchNorm moving statistics to the mean of its training-mode batch moments
    over STANDING_LATENTS fixed latents, for the weights it holds now (BigGAN's "standing
    statistics"). Moving-average weights need it: the statistics training kept belong to
    the live weights, and averaging past weights shifts every layer's activations. The
    latents are fixed, so the same weights always get the same statistics."""
    norms = [layer for layer in generator.layers if isinstance(layer, layers.BatchNormalization)]
    if not norms:
        return
    rng = np.random.default_rng(STANDING_SEED)
    latents = rng.standard_normal((STANDING_LATENTS, generator.inputs[0].shape[-1]))
    latents = latents.astype(np.float32)
    classes = None
    if len(generator.inputs) == 2:  # conditional: every class equally
        classes = balanced_classes(STANDING_LATENTS, class_count(generator))
    momenta = [layer.momentum for layer in norms]
    try:
        for calls, start in enumerate(range(0, len(latents), batch_size), start=1):
            for layer in norms:  # a running mean: batch k enters with weight 1/k
                layer.momentum = (calls - 1) / calls
            batch = latents[start : start + batch_size]
            if classes is not None:
                batch = [tf.constant(batch), tf.constant(classes[start : start + batch_size])]
            generator(batch, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def class_count(generator: keras.Model) -> int | None:
    """The classes a conditional generator draws (its one-hot layer's size), or None."""
    if len(generator.inputs) != 2:
        return None
    return int(generator.get_layer("class_one_hot").num_tokens)


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one image's forward pass: 2 x the multiply-adds of the convolutions and
    dense layers (spectral-normalised ones included)."""
    macs = 0
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, layers.Wrapper) else layer
        if isinstance(inner, layers.Conv2DTranspose):
            _, height, width, channels_in = layer.input.shape
            macs += height * width * channels_in * inner.filters * int(np.prod(inner.kernel_size))
        elif isinstance(inner, layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            kernel = int(np.prod(inner.kernel_size))
            macs += height * width * layer.input.shape[-1] * channels_out * kernel
        elif isinstance(inner, layers.Dense):
            macs += layer.input.shape[-1] * inner.units
    return 2 * macs


def _batch_norm(sync_norm: bool, fused_norm: bool):
    kind = FusedBatchNormalization if fused_norm else layers.BatchNormalization
    return functools.partial(kind, synchronized=sync_norm)


def _kernel_init(config: Config):
    if config.model.init_std is None:
        return "glorot_uniform"
    return keras.initializers.RandomNormal(0.0, config.model.init_std)


@keras.saving.register_keras_serializable(package="dcgan")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization with the same weights and results, but training on image
    tensors through TensorFlow's fused kernel: Keras computes the moments with separate ops
    on a float32 copy of the activations, which costs about a tenth of a DCGAN step (more
    under bfloat16). Everything else (inference, masks, other ranks, moments synchronised
    across replicas) is Keras' own code."""

    def call(self, inputs, training=None, mask=None):
        fused_case = training and self.trainable and mask is None and len(inputs.shape) == 4
        if not fused_case or self.axis != [3] or self.renorm or self.synchronized:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel hands back the unbiased variance; Keras averages the biased one.
        count = tf.cast(tf.size(inputs) // channels, "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="dcgan")
class SpectralNormalization(layers.Wrapper):
    """A Conv2D or Dense whose kernel is divided by its largest singular value in every
    forward pass (Miyato et al., 2018): the gradient flows through the division, and one
    power iteration per training call refines the singular vector estimate u.

    Keras' own SpectralNormalization instead overwrites the kernel variable with the
    normalised one, which makes the optimizer step on a projected weight.
    """

    def build(self, input_shape):
        if not isinstance(self.layer, layers.Conv2D | layers.Dense):
            raise TypeError(f"SpectralNormalization wraps Conv2D or Dense, not {self.layer}")
        self.layer.build(input_shape)
        self.vector_u = self.add_weight(
            shape=(1, self.layer.kernel.shape[-1]),
            initializer=keras.initializers.RandomNormal(0.0, 1.0),
            trainable=False,
            name="vector_u",
            dtype="float32",
        )
        self.built = True

    def normalised_kernel(self, training: bool = False):
        kernel = self.layer.kernel
        matrix = tf.reshape(tf.cast(kernel, "float32"), [-1, kernel.shape[-1]])
        u = tf.convert_to_tensor(self.vector_u)
        v = tf.math.l2_normalize(tf.matmul(u, matrix, transpose_b=True))
        u = tf.math.l2_normalize(tf.matmul(v, matrix))
        u, v = tf.stop_gradient(u), tf.stop_gradient(v)
        if training:
            self.vector_u.assign(u)
        sigma = tf.squeeze(tf.matmul(tf.matmul(v, matrix), u, transpose_b=True))
        return tf.cast(tf.cast(kernel, "float32") / sigma, self.compute_dtype)

    def call(self, inputs, training=None):
        kernel = self.normalised_kernel(bool(training))
        inner = self.layer
        if isinstance(inner, layers.Conv2D):
            outputs = inner.convolution_op(inputs, kernel)
        else:
            outputs = tf.matmul(inputs, kernel)
        if inner.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(inner.bias, outputs.dtype))
        return inner.activation(outputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _norm(kind: str, config: Config, name: str, batch_norm) -> layers.Layer | None:
    if kind == "batch":
        gamma = (
            keras.initializers.RandomNormal(1.0, config.model.init_std)
            if config.model.init_std is not None
            else "ones"
        )
        return batch_norm(gamma_initializer=gamma, name=name)
    if kind == "layer":
        return layers.LayerNormalization(name=name)
    return None


def _widths(width: int, depth: int, max_width: int) -> list[int]:
    """Filters per block from the image end: width, 2*width, ... capped at max_width."""
    return [min(width * 2**i, max_width) for i in range(depth)]


def _dcgan_generator(config: Config, batch_norm) -> keras.Model:
    model = config.model
    (base_h, base_w), depth = base_and_depth(config.data.shape, model.depth)
    widths = _widths(model.g_width, depth, model.max_width)[::-1]  # widest first
    init = _kernel_init(config)
    use_bias = model.g_norm == "none"  # a bias before BatchNorm's beta is redundant

    z = keras.Input((model.latent_dim,), name="z")
    inputs, code = z, z
    if model.conditional:
        label = keras.Input((), dtype="int32", name="class_index")
        inputs = [z, label]
        # A learned embedding of the class, as long as z, joins it (Mirza & Osindero, 2014).
        # Drawn from N(0, 1) as z is: at init_std's 0.02 the class would start as a
        # whisper next to z.
        embedding = layers.Dense(
            model.latent_dim,
            use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 1.0),
            name="class_embedding",
        )(_one_hot(label, config))
        code = layers.Concatenate(name="z_and_class")([z, embedding])
    x = layers.Dense(
        base_h * base_w * widths[0], use_bias=use_bias, kernel_initializer=init, name="project"
    )(code)
    x = layers.Reshape((base_h, base_w, widths[0]), name="reshape")(x)
    norm = _norm(model.g_norm, config, "project_norm", batch_norm)
    x = norm(x) if norm else x
    x = layers.ReLU(name="project_relu")(x)
    for i, filters in enumerate(widths[1:], start=1):
        x = _upsampled(x, filters, model, init, use_bias, f"up{i}")
        norm = _norm(model.g_norm, config, f"up{i}_norm", batch_norm)
        x = norm(x) if norm else x
        x = layers.ReLU(name=f"up{i}_relu")(x)
    x = _upsampled(x, config.data.channels, model, init, True, f"up{depth}")
    image = layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(inputs, image, name="generator")


def _upsampled(x, filters: int, model, init, use_bias: bool, name: str):
    """Twice the height and width: a stride-2 4x4 transposed convolution, or a resize
    followed by a 3x3 convolution (every output pixel gets the same number of inputs)."""
    if model.upsample == "transpose":
        return layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", use_bias=use_bias,
            kernel_initializer=init, name=name,
        )(x)  # fmt: skip
    x = layers.UpSampling2D(2, interpolation=model.resize_method, name=f"{name}_resize")(x)
    return layers.Conv2D(
        filters, 3, padding="same", use_bias=use_bias, kernel_initializer=init, name=name
    )(x)


def _one_hot(label, config: Config):
    return layers.CategoryEncoding(
        len(config.data.classes), output_mode="one_hot", name="class_one_hot"
    )(label)


def _dcgan_discriminator(config: Config, batch_norm) -> keras.Model:
    model = config.model
    (height, width), channels = config.data.shape, config.data.channels
    _, depth = base_and_depth((height, width), model.depth)
    widths = _widths(model.d_width, depth, model.max_width)
    init = _kernel_init(config)

    spectral = _spectral_wrapper(model.d_spectral_norm)
    image = keras.Input((height, width, channels), name="image")
    x = image
    for i, filters in enumerate(widths, start=1):
        norm = _norm(model.d_norm, config, f"down{i}_norm", batch_norm) if i > 1 else None
        x = spectral(
            layers.Conv2D(
                filters,
                4,
                strides=2,
                padding="same",
                use_bias=norm is None,
                kernel_initializer=init,
                name=f"down{i}",
            )
        )(x)
        x = norm(x) if norm else x
        x = layers.LeakyReLU(model.leaky_slope, name=f"down{i}_lrelu")(x)
        if model.d_dropout:
            x = layers.Dropout(model.d_dropout, name=f"down{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = spectral(layers.Dense(1, kernel_initializer=init, dtype="float32", name="logit"))(x)
    if not model.conditional:
        return keras.Model(image, logit, name="discriminator")
    # Projection discriminator (Miyato & Koyama, 2018): the logit plus the inner product
    # of D's features with an embedding of the class.
    label = keras.Input((), dtype="int32", name="class_index")
    embedding = spectral(
        layers.Dense(x.shape[-1], use_bias=False, kernel_initializer=init, name="class_embedding")
    )(_one_hot(label, config))
    projection = layers.Dot(axes=1, dtype="float32", name="projection")([x, embedding])
    logit = layers.Add(dtype="float32", name="conditional_logit")([logit, projection])
    return keras.Model([image, label], logit, name="discriminator")


def _spectral_wrapper(on: bool):
    def wrap(layer: layers.Layer) -> layers.Layer:
        if not on:
            return layer
        return SpectralNormalization(layer, dtype=layer.dtype_policy, name=f"{layer.name}_sn")

    return wrap


# The TensorFlow DCGAN tutorial (MNIST): Keras' default initialisers and LeakyReLU(0.3).
TUTORIAL_SLOPE = 0.3


def _tutorial_generator(config: Config, batch_norm) -> keras.Model:
    base_h, base_w = (side // 4 for side in config.data.shape)
    z = keras.Input((config.model.latent_dim,), name="z")
    x = layers.Dense(base_h * base_w * 256, use_bias=False, name="project")(z)
    x = batch_norm(name="project_norm")(x)
    x = layers.LeakyReLU(TUTORIAL_SLOPE, name="project_lrelu")(x)
    x = layers.Reshape((base_h, base_w, 256), name="reshape")(x)
    x = layers.Conv2DTranspose(128, 5, strides=1, padding="same", use_bias=False, name="up1")(x)
    x = batch_norm(name="up1_norm")(x)
    x = layers.LeakyReLU(TUTORIAL_SLOPE, name="up1_lrelu")(x)
    x = layers.Conv2DTranspose(64, 5, strides=2, padding="same", use_bias=False, name="up2")(x)
    x = batch_norm(name="up2_norm")(x)
    x = layers.LeakyReLU(TUTORIAL_SLOPE, name="up2_lrelu")(x)
    x = layers.Conv2DTranspose(
        config.data.channels, 5, strides=2, padding="same", use_bias=False, name="up3"
    )(x)
    image = layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(z, image, name="generator")


def _tutorial_discriminator(config: Config, spectral) -> keras.Model:
    (height, width), channels = config.data.shape, config.data.channels
    image = keras.Input((height, width, channels), name="image")
    x = spectral(layers.Conv2D(64, 5, strides=2, padding="same", name="down1"))(image)
    x = layers.LeakyReLU(TUTORIAL_SLOPE, name="down1_lrelu")(x)
    x = layers.Dropout(0.3, name="down1_dropout")(x)
    x = spectral(layers.Conv2D(128, 5, strides=2, padding="same", name="down2"))(x)
    x = layers.LeakyReLU(TUTORIAL_SLOPE, name="down2_lrelu")(x)
    x = layers.Dropout(0.3, name="down2_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = spectral(layers.Dense(1, dtype="float32", name="logit"))(x)
    return keras.Model(image, logit, name="discriminator")
