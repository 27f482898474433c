import pytest

from edgec.errors import EdgecError, UnknownTargetError
from edgec.targets import load_registry


def test_bundled_registry_has_float_targets():
    reg = load_registry()
    for name in ("x86_64-fp32", "arm64-fp32"):
        t = reg.target(name)
        assert t.formats == ("tflite", "tvm")
        assert "fold_batchnorm" in t.passes
    assert reg.target("arm64-fp32").tvm_target["mtriple"] == "aarch64-linux-gnu"
    assert "host" in reg.devices


def test_unknown_target_lists_known_ones_and_suggests():
    reg = load_registry()
    with pytest.raises(UnknownTargetError) as e:
        reg.target("arm64-fp3")
    msg = str(e.value)
    assert "arm64-fp32" in msg and "x86_64-fp32" in msg and "Did you mean 'arm64-fp32'" in msg


def test_bad_devices_file_is_named(tmp_path):
    bad = tmp_path / "devices.yaml"
    bad.write_text("targets:\n  t1:\n    arch: z80\n    precision: fp32\n    formats: [tflite]\n")
    with pytest.raises(EdgecError, match=r"devices.yaml: target 't1' has arch='z80'"):
        load_registry(bad)
    bad.write_text("targets:\n  t1:\n    arch: x86_64\n    precision: fp32\n    formats: [tflite]\n    runs_on: [board]\n")
    with pytest.raises(EdgecError, match="runs_on unknown device 'board'"):
        load_registry(bad)
