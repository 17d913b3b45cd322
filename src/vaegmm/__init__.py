"""vaegmm: a VAE on handwritten digits, a from-scratch GMM on its latent space, few-label classification."""

__version__ = "0.1.0"
