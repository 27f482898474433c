"""Placeholders: timm.data.dataset_factory imports dataset classes at module level."""

from torchvision._placeholder import placeholder_getattr

__getattr__ = placeholder_getattr(__name__)
