"""LaSER dense retrieval (latent thinking before embedding) for Haystack, LlamaIndex and Qdrant."""

from .config import PRESETS, LaSERConfig
from .encoder import LaSEREncoder
from .latent import LatentOutput, latent_think

__all__ = ["PRESETS", "LaSERConfig", "LaSEREncoder", "LatentOutput", "latent_think"]
__version__ = "0.1.0"
