"""Apache TVM: run and time a Relax VM shared library written by edgec.lower.tvm.

The library's signature comes from its sidecar `<library>.json` (see
edgec/lower/tvm/signature.py). Inputs become TVM tensors in `set_inputs` and are bound to the
VM with `set_input`, so the timed `invoke` is only the VM running `main` (`invoke_stateful`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import tvm
from tvm import relax

from edgec.errors import EdgecError, ModelLoadError
from edgec.lower.tvm.signature import read_signature
from edgec.runtimes.base import Runtime, TensorSpec, artifact_path
from edgec.targets import host_arch

# ELF e_machine values (System V ABI) for the architectures edgec names.
_ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "arm64", 243: "riscv64"}

# TVM's thread pool mode that uses the first n cores (ThreadGroup::kBig in threading_backend.h).
_AFFINITY_BIG = 1


class TVMRuntime(Runtime):
    name = "tvm"

    def __init__(self, path: str | Path, device: str = "cpu", num_threads: int | None = None):
        """Load `path` (a .so from lower_tvm) on this machine.

        num_threads sets TVM's thread pool for the whole process (TVM has one pool per OS
        thread, shared by every module). Without it TVM uses half the logical cores on x86.
        The pool is sized when first used, so ask for the most threads in the first runtime.
        """
        self._device = _tvm_device(device)
        self.path = artifact_path(path)
        _check_architecture(self.path)
        self._signature = read_signature(self.path)

        if num_threads is not None:
            granted = _configure_threads(num_threads)
            if granted != num_threads:
                warnings.warn(
                    f"TVM's thread pool runs {granted} thread(s), not the {num_threads} asked for: "
                    "it was created earlier in this process with fewer (set TVM_NUM_THREADS first)",
                    stacklevel=2,
                )
        self._on_gpu = device != "cpu"
        if self._on_gpu:
            _cuda_kernel_compiler()
        try:
            library = tvm.runtime.load_module(str(self.path))
            self._vm = relax.VirtualMachine(library, self._device)
        except Exception as exc:  # noqa: BLE001 - a TVM load failure is a bad artifact, not a bug
            raise ModelLoadError(
                f"{self.path}: not a loadable TVM Relax library ({_last_line(exc)}); rebuild it with edgec"
            ) from exc
        self._function = self._signature.function

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._signature.inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._signature.outputs)

    @property
    def threads(self) -> int:
        """Threads TVM's pool uses for this OS thread."""
        return int(tvm.get_global_func("runtime.NumThreads")())

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        tensors = []
        for spec, array in zip(self._signature.inputs, inputs):
            # Reshaped because np.ascontiguousarray (Runtime._check_inputs) makes a 0-d scalar 1-d.
            array = np.asarray(array, dtype=spec.dtype, order="C").reshape(spec.shape)
            tensors.append(tvm.runtime.tensor(array, device=self._device))
        self._vm.set_input(self._function, *tensors)

    def invoke(self) -> None:
        self._vm.invoke_stateful(self._function)

    def get_outputs(self) -> list[np.ndarray]:
        return [t.numpy() for t in _flatten(self._vm.get_outputs(self._function))]


def elf_architecture(path: str | Path) -> str | None:
    """The architecture an ELF file was built for ('x86_64', 'arm64', ...), or None if not ELF."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byteorder = "little" if header[5] == 1 else "big"  # EI_DATA
    machine = int.from_bytes(header[18:20], byteorder)  # e_machine
    return _ELF_MACHINES.get(machine, f"ELF machine {machine}")


def elf_damage(path: str | Path) -> str | None:
    """Why an ELF file is cut short (its header, a table or a loaded segment ends past the end of
    the file), or None. dlopen maps such a file and the process dies with SIGBUS on first touch."""
    data = Path(path).read_bytes()
    size = len(data)
    wide = data[4] == 2  # EI_CLASS: 64-bit
    order = "little" if data[5] == 1 else "big"
    if size < (64 if wide else 52):
        return f"the ELF header needs {64 if wide else 52} bytes; the file has {size}"

    def num(offset: int, width: int) -> int:
        return int.from_bytes(data[offset:offset + width], order)

    word = 8 if wide else 4
    phoff, shoff = (num(0x20, 8), num(0x28, 8)) if wide else (num(0x1C, 4), num(0x20, 4))
    phentsize, phnum, shentsize, shnum = (num(o, 2) for o in ((0x36, 0x38, 0x3A, 0x3C) if wide else
                                                               (0x2A, 0x2C, 0x2E, 0x30)))
    if phoff + phnum * phentsize > size:
        return f"its program headers end at byte {phoff + phnum * phentsize}; the file has {size}"
    if shoff + shnum * shentsize > size:
        return f"its section headers end at byte {shoff + shnum * shentsize}; the file has {size}"
    for i in range(phnum):
        entry = phoff + i * phentsize
        offset = num(entry + (8 if wide else 4), word)
        filesz = num(entry + (32 if wide else 16), word)
        if num(entry, 4) == 1 and offset + filesz > size:  # PT_LOAD
            return f"segment {i} ends at byte {offset + filesz}; the file has {size}"
    return None


def _check_architecture(path: Path) -> None:
    # Before dlopen: loading a foreign-architecture library fails with an unhelpful
    # "cannot open shared object file", and a wrong one must never be executed.
    arch = elf_architecture(path)
    if arch is None:
        raise ModelLoadError(f"{path}: not an ELF shared library; TVM artifacts from edgec are .so files")
    if arch != host_arch():
        raise ModelLoadError(
            f"{path}: built for {arch}; this machine is {host_arch()}. "
            f"Run it on an {arch} device, e.g. --device qemu-{arch}"
        )
    damage = elf_damage(path)
    if damage:
        raise ModelLoadError(f"{path}: the library is corrupt or truncated ({damage}); rebuild or copy it again")


def _configure_threads(num_threads: int) -> int:
    if num_threads < 1:
        raise EdgecError(f"num_threads must be at least 1, got {num_threads}")
    # The pool reads TVM_NUM_THREADS when it is created and can only shrink afterwards.
    os.environ["TVM_NUM_THREADS"] = str(num_threads)
    tvm.get_global_func("runtime.config_threadpool")(_AFFINITY_BIG, num_threads)
    return int(tvm.get_global_func("runtime.NumThreads")())


def _tvm_device(device: str):
    """'cpu', or 'cuda' / 'cuda:N' for a library built for a CUDA target (the Relax VM keeps
    its inputs and outputs on that GPU; the CPU runs the VM itself)."""
    if device == "cpu":
        return tvm.cpu(0)
    if device == "cuda" or device.startswith("cuda:"):
        index = int(device.partition(":")[2] or 0)
        if not tvm.cuda(index).exist:
            raise EdgecError(f"device '{device}': TVM sees no CUDA GPU {index} on this machine "
                             "(no NVIDIA driver, or no such GPU); run CUDA artifacts where one is")
        return tvm.cuda(index)
    raise EdgecError(f"TVMRuntime runs libraries on 'cpu' or 'cuda[:N]'; device '{device}' is not supported")


def _flatten(value) -> list:
    # get_outputs returns a Tensor for one output and (nested) tuples for several.
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _flatten(item)]
    return [value]



def _last_line(exc: BaseException) -> str:
    # TVM errors carry a C++ backtrace before the message.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _cuda_kernel_compiler() -> None:
    """A .so built where TVM's CUDA runtime could not load (no driver) carries its kernels as
    CUDA C; TVM's CUDA runtime compiles them on load through tvm_callback_cuda_compile
    (tvm/support/nvcc.py): NVRTC when `cuda-bindings` is installed, else nvcc."""
    import importlib.util
    import os

    import tvm.support.nvcc  # noqa: F401  (registers the callback)

    if importlib.util.find_spec("cuda") is None and "TVM_CUDA_COMPILE_MODE" not in os.environ:
        from edgec.lower.tvm.cuda import find_nvcc

        nvcc = find_nvcc()
        if nvcc is not None:
            os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"
            os.environ["PATH"] = f"{nvcc.parent}{os.pathsep}{os.environ.get('PATH', '')}"
