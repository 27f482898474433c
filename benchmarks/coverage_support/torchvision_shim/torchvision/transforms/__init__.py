"""Placeholders: timm.data imports torchvision.transforms; building a model never calls it."""

from torchvision._placeholder import placeholder_getattr
from torchvision.transforms import functional  # noqa: F401
from torchvision.transforms.functional import InterpolationMode  # noqa: F401  (torchvision exports it here too)

__getattr__ = placeholder_getattr(__name__)
