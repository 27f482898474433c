"""End to end, as a user runs it: every zoo model, through edgec.compile, for every float target."""

import subprocess

import numpy as np
import pytest

import edgec
from edgec import zoo
from edgec.runtimes.qemu import qemu_status

# Small sizes keep the suite fast; the architectures are the same as at full size.
SMALL = {
    "mobilenet_v1": dict(resolution=64, num_classes=10, width=0.5),
    "mobilenet_v2": dict(resolution=64, num_classes=10, width=0.5),
    "resnet18": dict(resolution=64, num_classes=10, width=0.25),
    "vanillanet": dict(resolution=64, num_classes=10),
    "convfirst": dict(resolution=64, num_classes=10),
    "mlp": dict(),
    "transformer_block": dict(),
    "vit_tiny": dict(resolution=32, patch=8, dim=64, depth=2, heads=4, num_classes=10),
}


def test_every_zoo_model_is_covered():
    assert set(SMALL) == set(zoo.names())


@pytest.mark.parametrize("target", ["x86_64-fp32", "arm64-fp32"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_zoo_model_compiles_and_matches_torch(name, target, tmp_path):
    z = zoo.build(name, **SMALL[name])
    art = edgec.compile(z.module, example_inputs=z.example_inputs, target=target, out_dir=tmp_path, name=name)
    assert set(art.paths) == {"tflite", "tvm"}
    x = z.example_inputs[0]
    expected = z.module(x).detach().numpy()
    scale = np.abs(expected).max()
    # The TFLite file runs here for both targets; the TVM module only for the host's arch.
    got = art.run(x.numpy())[0]
    assert np.abs(got - expected).max() / scale < 1e-4
    verification = art.report["verification"]["artifacts"]
    assert verification["tflite"]["vs_torch"]["max_rel_error"] < 1e-4
    assert verification["tflite"]["xnnpack"]["fraction"] == 1.0
    if target == "x86_64-fp32":
        got = art.run(x.numpy(), fmt="tvm")[0]
        assert np.abs(got - expected).max() / scale < 1e-4
    else:
        # The arm64 .so is verified under qemu-arm64 (correctness only) when that device is set up.
        ready, why = qemu_status()
        assert verification["tvm"]["ran"] is ready, (verification["tvm"], why)
        if ready:
            assert verification["tvm"]["vs_torch"]["max_rel_error"] < 1e-4
        kind = subprocess.run(["file", "-b", str(art.paths["tvm"])], capture_output=True, text=True).stdout
        assert "ARM aarch64" in kind and "shared object" in kind
    assert art.report_path.is_file()
