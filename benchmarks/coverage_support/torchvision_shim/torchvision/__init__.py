"""A minimal stand-in for torchvision, put on sys.path only in the coverage benchmark's model-building
subprocess (benchmarks/coverage_support/runner.py), never installed.

Why: timm 1.0 imports torchvision unguarded (timm/layers/create_norm.py and norm_act.py take
`torchvision.ops.misc.FrozenBatchNorm2d`; timm.data, which most timm model files import for their
mean/std constants, takes `torchvision.transforms`, `.transforms.functional` and `.datasets`). The only
torchvision wheel built for torch 2.13 is a CUDA build whose C ops fail to register against the CPU
torch here, and installing it would replace nothing but break every process that imports it.
Building a model with random weights needs none of torchvision's image pipeline:

- ops.misc.FrozenBatchNorm2d is implemented for real (same buffers and arithmetic as torchvision's),
  because timm can build models with it;
- transforms.functional.InterpolationMode is the real enum (timm builds tables from it at import);
- the rest of transforms / transforms.functional / datasets are placeholders that import but raise on use, so a
  benchmark that accidentally depends on the image pipeline fails loudly instead of computing garbage;
- models.feature_extraction is absent: timm guards that import (timm/layers/_fx.py) and turns FX
  feature extraction off, which model building does not use.
"""

__version__ = "0.0+edgec.coverage.shim"

from torchvision import datasets, ops, transforms  # noqa: E402,F401  (timm does `from torchvision import transforms`)
