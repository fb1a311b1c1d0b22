"""The networks, the adversarial model that trains them, the losses it optimises, and the
latent space they are sampled from."""
