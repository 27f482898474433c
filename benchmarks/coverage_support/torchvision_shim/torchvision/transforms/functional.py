"""Placeholders, except InterpolationMode: timm.data.naflex_transforms imports it unguarded and builds
lookup tables from it at import time, so it is torchvision's enum, value for value."""

from enum import Enum

from torchvision._placeholder import placeholder_getattr


class InterpolationMode(Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


__getattr__ = placeholder_getattr(__name__)
