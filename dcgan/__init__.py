"""Train Deep Convolutional GANs with Keras 3 and turn the generator into pictures."""

__version__ = "0.1.0"
