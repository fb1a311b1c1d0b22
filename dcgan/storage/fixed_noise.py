"""The latents behind every sample grid of a run: drawn once from the seed, kept in
fixed_noise.npy, and checked when read back (never a pickle, never the wrong shape)."""

from __future__ import annotations

import numpy as np

from dcgan.config import Config
from dcgan.errors import RunDirError, shorten
from dcgan.files import writing
from dcgan.files.reading import UnsafeFile, open_regular
from dcgan.storage.run_folder import RunDir


def draw_fixed_noise(run: RunDir, config: Config) -> np.ndarray:
    """A new run's latent batch behind every sample grid, drawn from the seed and kept."""
    rng = np.random.default_rng(config.seed)
    noise = rng.standard_normal((config.output.num_samples, config.model.latent_dim))
    noise = noise.astype(np.float32)
    with writing.atomic_path(run.fixed_noise) as tmp:
        np.save(tmp, noise)
    return noise


def kept_fixed_noise(run: RunDir, config: Config) -> np.ndarray | None:
    """The run's kept latents, if it has some: a float array (n, latent_dim) of finite
    values, n at most the grid's bound; never a pickle."""
    path, latent_dim = run.fixed_noise, config.model.latent_dim
    if not (path.exists() or path.is_symlink()):
        return None
    limit = 1024 * latent_dim * 8 + 4096  # float64 at the largest output.num_samples
    try:
        with open_regular(path, limit, "latent file") as stream:
            noise = np.load(stream, allow_pickle=False)
    except UnsafeFile as exc:
        raise RunDirError(f"{exc}; delete it to draw new latents") from None
    except (OSError, ValueError, EOFError) as exc:  # empty, a pickle, not an .npy
        why = shorten(str(exc) or type(exc).__name__)
        raise RunDirError(f"{path}: not a saved latent batch ({why}); delete it") from None
    if (
        noise.ndim != 2
        or noise.shape[1] != latent_dim
        or not 0 < len(noise) <= 1024
        or noise.dtype.kind != "f"
        or not np.isfinite(noise).all()
    ):
        raise RunDirError(
            f"{path}: not this run's latents: expected finite floats of shape (n, "
            f"{latent_dim}), got {noise.dtype} {noise.shape}; delete it to draw new ones"
        )
    return noise.astype(np.float32)
