"""vaegmm: a VAE on grey images, a from-scratch GMM on its latent space, and few-label classification.

The public API is what this module exports; everything else is internal and may change::

    from vaegmm import VAEGMM
    model = VAEGMM().fit(images, labels_with_minus_one_for_unlabelled)
    model.predict(new_images)
"""

from .config import GMMConfig, NoveltyConfig, TrainConfig, VAEConfig
from .estimator import VAEGMM

__version__ = "0.2.0"
__all__ = ["VAEGMM", "VAEConfig", "TrainConfig", "GMMConfig", "NoveltyConfig", "__version__"]
