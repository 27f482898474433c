"""fast_math: the vectorizable exp/sigmoid/tanh/erf against float64 references over the
whole float32 range that matters, and the proof that LLVM no longer calls libm per lane."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import tvm
from scipy.special import erf, expit
from tvm import s_tir, te

from edgec.lower.tvm.fast_math import fast_math, rewrite_prim_func
from edgec.lower.tvm.flops import FLOPS_ATTR

N = 4096
FUNCTIONS = {"exp": (te.exp, np.exp), "sigmoid": (te.sigmoid, expit), "tanh": (te.tanh, np.tanh),
             "erf": (te.erf, erf)}


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-100, 88, N // 2), rng.standard_normal(N // 4) * 4,
                        rng.standard_normal(N // 4) * 1e-3]).astype(np.float32)
    return x


def _build(name: str, fast: bool):
    a = te.placeholder((N,), "float32", name="a")
    fn = FUNCTIONS[name][0]
    out = te.compute((N,), lambda i: fn(a[i]), name="out")
    mod = tvm.IRModule({"main": te.create_prim_func([a, out])})
    if fast:
        mod = fast_math(mod)
    sch = s_tir.Schedule(mod)
    (loop,) = sch.get_loops(sch.get_sblock("out"))
    sch.vectorize(sch.split(loop, [None, 8])[1])
    return tvm.compile(sch.mod, target={"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v3"})


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_fast_function_matches_float64_reference(name):
    x = _inputs()
    lib = _build(name, fast=True)
    out = tvm.runtime.tensor(np.zeros(N, np.float32))
    lib["main"](tvm.runtime.tensor(x), out)
    got = out.numpy().astype(np.float64)
    want = FUNCTIONS[name][1](x.astype(np.float64))
    if name == "exp":
        # Relative error where float32 holds the result; inputs above 88 saturate at exp(88).
        normal = (want > 1e-37) & (x <= 88)
        assert np.max(np.abs(got[normal] - want[normal]) / want[normal]) < 1e-6
        assert np.all(got[x < -88.4] <= 1e-37) and np.all(got >= 0)
    else:
        # |f| <= 1: absolute error, and relative error near zero for the odd ones.
        assert np.max(np.abs(got - want)) < 1e-6
        if name != "sigmoid":
            small = np.abs(x) < 1e-2
            assert np.max(np.abs(got[small] - want[small]) / np.maximum(np.abs(want[small]), 1e-30)) < 1e-5


def _libm_calls(lib, tmp_path) -> set[str]:
    path = tmp_path / "k.so"
    lib.export_library(str(path))
    symbols = subprocess.run(["nm", "-D", "--undefined-only", str(path)], capture_output=True, text=True,
                             check=True).stdout
    called = {line.split()[-1].split("@")[0] for line in symbols.splitlines() if line.strip()}
    return called & {"expf", "erff", "tanhf"}


@pytest.mark.parametrize("name", ["exp", "erf"])
def test_no_libm_call_per_lane(name, tmp_path):
    """Without the rewrite the vector loop calls libm's scalar expf/erff for each lane."""
    assert _libm_calls(_build(name, fast=False), tmp_path)
    assert not _libm_calls(_build(name, fast=True), tmp_path)


def test_rewritten_kernel_keeps_its_model_flops_and_others_stay_untouched():
    a = te.placeholder((N,), "float32", name="a")
    silu = te.create_prim_func([a, te.compute((N,), lambda i: a[i] * te.sigmoid(a[i]), name="o")])
    double = te.create_prim_func([a, te.compute((N,), lambda i: a[i] * 2.0, name="o")])
    mod = fast_math(tvm.IRModule({"silu": silu, "double": double}))
    before = int(s_tir.analysis.estimate_tir_flops(tvm.IRModule({"main": silu})))
    assert int(mod["silu"].attrs[FLOPS_ATTR]) == before
    assert int(s_tir.analysis.estimate_tir_flops(tvm.IRModule({"main": mod["silu"]}))) > before
    assert mod["double"].same_as(double)  # a tuning record for it still matches


def test_float16_calls_are_left_to_tvm():
    a = te.placeholder((N,), "float16", name="a")
    func = te.create_prim_func([a, te.compute((N,), lambda i: te.exp(a[i]), name="o")])
    assert rewrite_prim_func(func).same_as(func)
