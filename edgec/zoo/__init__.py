"""The model zoo: architectures defined in this project, with calibrated random weights.

    from edgec import zoo
    zoo.names()                                   # ['convfirst', 'mlp', 'mobilenet_v1', ...]
    m = zoo.build("mobilenet_v2", resolution=96, num_classes=10, seed=0)
    m.module(*m.example_inputs)                   # eval mode, batch 1
    zoo.parse_spec("mobilenet_v2?resolution=96")  # the CLI's zoo:NAME?k=v form

Weights are random but not degenerate: BatchNorm statistics and the classifier are calibrated
on random inputs (see calibrate.py), so outputs depend on the input and comparing an artifact
with the float model is meaningful. Building is deterministic for a given seed.
"""

from edgec.zoo.registry import ZooModel, build, describe, names, parse_spec

# Importing a model file registers it.
from edgec.zoo import convfirst, mlp, mobilenet_v1, mobilenet_v2, resnet18, transformer, vanillanet  # noqa: E402,F401

__all__ = ["ZooModel", "build", "describe", "names", "parse_spec"]
