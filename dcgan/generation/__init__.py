"""From a trained generator to files: loading --ckpt, samples, latent walks, exports."""
