"""edgec: compile PyTorch and ONNX models to verified TFLite and Apache TVM artifacts.

    import edgec
    art = edgec.compile(module, example_inputs=(x,), target="arm64-fp32", out_dir="out")
"""

__version__ = "0.1.0"

__all__ = ["compile", "tune", "benchmark", "Artifact", "__version__"]


def __getattr__(name):
    # Imported on first use: `import edgec` stays cheap (no torch/TVM) for the CLI's quick commands.
    if name == "compile":
        from edgec.api import compile

        return compile
    if name == "tune":
        from edgec.api import tune

        return tune
    if name == "benchmark":
        from edgec.bench import benchmark

        return benchmark
    if name == "Artifact":
        from edgec.artifact import Artifact

        return Artifact
    raise AttributeError(f"module 'edgec' has no attribute {name!r}")
