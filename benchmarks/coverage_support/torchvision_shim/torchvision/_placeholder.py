"""Module-level __getattr__ for the placeholder submodules: every public name imports, nothing runs."""


def placeholder_getattr(module: str):
    def __getattr__(name: str):
        if name.startswith("_"):  # dunder/private look-ups (inspect, pickle, importlib) must stay AttributeError
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return _placeholder(f"{module}.{name}")

    return __getattr__


def _placeholder(qualname: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"{qualname} is not available: this is edgec's coverage-benchmark torchvision stand-in, "
                           "which only supports building models; install a torchvision matching torch for this")

    # A class (not a function), because timm subclasses some of these (class MaybeToTensor(transforms.ToTensor)).
    return type(qualname.rsplit(".", 1)[-1], (), {"__init__": refuse, "__call__": refuse, "__module__": qualname.rsplit(".", 1)[0]})
