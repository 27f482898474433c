"""CUDA builds: which nvcc compiles the kernels, and the fp16 rewrite.

TVM 0.27 compiles CUDA kernels through its `tvm_callback_cuda_compile` hook
(tvm/support/nvcc.py): NVRTC by default, which needs the `cuda-bindings` package, or nvcc
(TVM_CUDA_COMPILE_MODE=nvcc, found on PATH), which writes a fatbin for the target's `arch`.
edgec uses nvcc, looked for in this order:

    $EDGEC_NVCC, nvcc on PATH, $CUDA_HOME/bin, /usr/local/cuda/bin,
    the nvidia-cuda-nvcc wheel (`pip install nvidia-cuda-nvcc`, the `cuda` extra)

Where the kernels are compiled depends on the build machine (read in TVM 0.27's wheel):
the CUDA module factory (`ffi.Module.create.cuda`) lives in libtvm_runtime_cuda.so, which
links the driver's libcuda.so.1. With a driver, codegen calls the hook and the .so carries a
fatbin. Without one (a build box, this machine) TVM embeds the kernels as CUDA C in a
fallback module, and TVM's CUDA runtime compiles them through the same hook when the .so is
loaded on the GPU machine (runtimes/tvmrt.py points it at nvcc there). Either way no GPU is
needed to build; `kernel_form` says which one a build produced.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sys
from pathlib import Path

from tvm import relax

from edgec.errors import EdgecError


def find_nvcc() -> Path | None:
    candidates = [os.environ.get("EDGEC_NVCC"), shutil.which("nvcc")]
    if os.environ.get("CUDA_HOME"):
        candidates.append(os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc"))
    candidates.append("/usr/local/cuda/bin/nvcc")
    for entry in sys.path:  # pip's nvidia-cuda-nvcc: nvidia/cuda_nvcc/bin or nvidia/cu13/bin
        candidates += sorted(glob.glob(os.path.join(entry, "nvidia", "*", "bin", "nvcc")))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(c)
    return None


def require_nvcc(target_name: str) -> Path:
    nvcc = find_nvcc()
    if nvcc is None:
        raise EdgecError(
            f"target '{target_name}' needs the CUDA compiler nvcc, which is not on PATH, in $CUDA_HOME/bin "
            "or /usr/local/cuda/bin; install a CUDA toolkit or `pip install nvidia-cuda-nvcc` "
            "(edgec's `cuda` extra), or point EDGEC_NVCC at an nvcc"
        )
    return nvcc


def compiles_at_build() -> bool:
    """True when TVM's CUDA runtime is loaded here, so codegen compiles kernels now."""
    import tvm

    return tvm.get_global_func("ffi.Module.create.cuda", allow_missing=True) is not None


def kernel_form() -> str:
    if compiles_at_build():
        return "fatbin (nvcc, at build)"
    return "CUDA C (no CUDA driver on the build machine; compiled by TVM's CUDA runtime when loaded)"


@contextlib.contextmanager
def nvcc_build(target_name: str):
    """Within: TVM compiles CUDA kernels with the nvcc find_nvcc picks (fatbin). Without
    TVM's CUDA runtime nothing is compiled here (see the module docstring)."""
    if not compiles_at_build():
        yield None
        return
    nvcc = require_nvcc(target_name)
    import tvm.support.nvcc  # noqa: F401  (registers tvm_callback_cuda_compile)

    saved = {k: os.environ.get(k) for k in ("PATH", "TVM_CUDA_COMPILE_MODE")}
    os.environ["PATH"] = f"{nvcc.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"
    try:
        yield nvcc
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fp16_passes() -> list:
    """fp16 compute with fp32 accumulation for conv/matmul (TVM's ToMixedPrecision); the
    module keeps fp32 inputs and outputs, so it verifies and deploys like the fp32 one."""
    return [relax.transform.ConvertToDataflow(), relax.transform.ToMixedPrecision(out_dtype="float32")]
