"""A trained generator as the commands use it: the Keras model, where it came from, its
classes when it is conditional, and uint8 images for latents."""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from dcgan import imaging
from dcgan.errors import DcganError, printable, shorten
from dcgan.models.networks import class_count
from dcgan.storage.run_folder import RunDir


@dataclass
class LoadedGenerator:
    model: keras.Model
    source: str  # what was loaded, for messages
    run: RunDir | None = None
    class_names: list[str] | None = None  # a conditional run's; an exported file has none
    _blended: keras.Model | None = field(default=None, repr=False)  # made when first asked

    @property
    def conditional(self) -> bool:
        return len(self.model.inputs) == 2

    @property
    def classes(self) -> list[str] | None:
        """The class names of a conditional generator (indices as text when the file
        does not say), None for an unconditional one."""
        if not self.conditional:
            return None
        return self.class_names or [str(i) for i in range(class_count(self.model))]

    @property
    def latent_dim(self) -> int:
        return int(self.model.inputs[0].shape[-1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.model.output_shape[1:])

    def class_index(self, text: str) -> int:
        """--class K: a class name, or an index into the classes."""
        classes = self.classes
        if classes is None:
            raise DcganError(
                f"--class {shorten(printable(text), 60)}: {self.source} is not a conditional "
                "generator (model.conditional was off), so it has no classes to choose from"
            )
        if text in classes:
            return classes.index(text)
        if text.strip().isdigit() and int(text) < len(classes):
            return int(text)
        shown = ", ".join(shorten(printable(name), 30) for name in classes[:12])
        more = f" and {len(classes) - 12} more" if len(classes) > 12 else ""
        raise DcganError(
            f"--class {shorten(printable(text), 60)}: not a class of {self.source} (its "
            f"classes: {shown}{more}; or an index 0..{len(classes) - 1})"
        )

    def blended_images(
        self, latents: np.ndarray, class_weights: np.ndarray, batch_size: int = 64
    ) -> np.ndarray:
        """uint8 images of a conditional generator for latents and, instead of one class
        each, a weighting of the classes (N, classes): G embeds a class linearly, so
        weights (1 - t, t) on classes A and B put the embedding t of the way from A's to
        B's, the walk between classes that `interpolate --class A,B` draws."""
        if self._blended is None:
            model = self.model
            one_hot = model.get_layer("class_one_hot").output
            self._blended = keras.Model([model.inputs[0], one_hot], model.output)
        out = [
            imaging.to_uint8(
                self._blended(
                    [tf.constant(latents[i : i + batch_size]),
                     tf.constant(class_weights[i : i + batch_size], tf.float32)],
                    training=False,
                )
            )
            for i in range(0, len(latents), batch_size)
        ]  # fmt: skip
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), np.uint8)

    def images(
        self, latents: np.ndarray, batch_size: int = 64, classes: np.ndarray | None = None
    ) -> np.ndarray:
        """uint8 images for float32 latents (of int classes, for a conditional generator),
        computed batch_size at a time."""
        if self.conditional and (classes is None or len(classes) != len(latents)):
            raise ValueError("a conditional generator needs a class for every latent")
        out = []
        for i in range(0, len(latents), batch_size):
            inputs = latents[i : i + batch_size]
            if self.conditional:
                chosen = np.asarray(classes[i : i + batch_size], np.int32)
                inputs = [tf.constant(inputs), tf.constant(chosen)]
            out.append(imaging.to_uint8(self.model(inputs, training=False)))
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), np.uint8)
