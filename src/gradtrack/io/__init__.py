"""Input/output at the bottom layer: image normalisation and frame sources."""
from .image import ImageError, as_rgb_uint8

__all__ = ["ImageError", "as_rgb_uint8"]
