"""Analyses of a model or a built artifact, each a module:

    kernels.py  `edgec analyze`: per-kernel FLOPs, bytes, time, efficiency vs peak, roofline bound
    timing.py   per-kernel time inside TVM's VM on this machine
    peak.py     this machine's measured peak FLOP/s and memory bandwidth
    plot.py     the efficiency-gap and roofline chart
    sparse.py   will XNNPACK run a model with its sparse (NCHW) kernels, with reasons

Imported lazily: `edgec.analyze.sparse` (used by the TFLite lowering) must not pull in TVM.
"""


def __getattr__(name):
    if name in ("analyze", "display_name"):
        from edgec.analyze import kernels

        return getattr(kernels, name)
    raise AttributeError(f"module 'edgec.analyze' has no attribute {name!r}")
