"""Networks: the DiT velocity model, the auxiliary prior, the latent-sampler MLP."""
