"""A trained generator as the commands use it: the Keras model, where it came from, and
uint8 images for latents."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from dcgan import imaging
from dcgan.storage.run_folder import RunDir


@dataclass
class LoadedGenerator:
    model: keras.Model
    source: str  # what was loaded, for messages
    run: RunDir | None = None

    @property
    def latent_dim(self) -> int:
        return int(self.model.input_shape[-1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.model.output_shape[1:])

    def images(self, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 images for float32 latents, computed batch_size at a time."""
        out = [
            imaging.to_uint8(self.model(latents[i : i + batch_size], training=False))
            for i in range(0, len(latents), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), np.uint8)
