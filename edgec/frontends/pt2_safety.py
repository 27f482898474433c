"""Loading a .pt2 (torch.export archive) without running code from the file.

`torch.export.load` is not safe by itself (read in torch 2.13's export/pt2_archive/_package.py
and _export/serde/serialize.py):
- the sample inputs (data/sample_inputs/*.pt) are loaded with torch.load(weights_only=True)
  and, when that refuses, again with weights_only=False: full unpickling;
- weights and tensor constants saved with "use_pickle" are loaded with weights_only=False;
- opaque constants go through pickle.loads, torchbind objects through torch's own unpickler;
- symbolic shape expressions ("expr_str") are parsed with sympy.sympify, which calls eval;
- a node's target is any attribute path under torch/operator/math, called when the graph runs.

So before torch sees the bytes, `check_archive` inspects every member torch would unpickle and
every expression and node target in the model JSON, and refuses the file naming the member.
Then `restricted_loading` makes every torch.load inside torch.export.load a weights-only one
and refuses unsafe expressions, so a case this check misses still cannot run code.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import operator
import pickle
import re
import threading
from typing import Any, Iterator

import torch

from edgec.errors import ModelLoadError

TRUST_HINT = "if you trust this file, pass --trust-pickle (API: allow_pickle=True)"

_SAMPLE_INPUTS = "data/sample_inputs/{}.pt"
_WEIGHTS_DIR = "data/weights/"
_CONSTANTS_DIR = "data/constants/"


class UnsafeArchive(Exception):
    """Raised inside torch.export.load by the guard; not a RuntimeError, so torch does not swallow it."""


def check_archive(data: bytes, what: str) -> None:
    """Refuse an archive that needs full unpickling or holds code-like strings; names the member."""
    from torch.export.pt2_archive import constants as c

    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        names = set(reader.get_all_records())
    except Exception as exc:
        raise ModelLoadError(f"{what}: the archive is corrupt or truncated ({_first_line(exc)})") from None

    def read(name: str) -> bytes:
        try:
            return reader.get_record(name)
        except Exception as exc:
            raise ModelLoadError(f"{what}: member {name} cannot be read ({_first_line(exc)})") from None

    if c.ARCHIVE_VERSION_PATH not in names:
        raise ModelLoadError(f"{what}: not a current torch.export archive (no {c.ARCHIVE_VERSION_PATH}); "
                             "re-save it with torch.export.save")
    models = sorted(n[len(c.MODELS_DIR):-len(".json")] for n in names
                    if n.startswith(c.MODELS_DIR) and n.endswith(".json"))
    if not models:
        raise ModelLoadError(f"{what}: the archive holds no exported program ({c.MODELS_DIR}*.json)")
    for model in models:
        sample_inputs = _SAMPLE_INPUTS.format(model)
        if sample_inputs in names:
            _check_tensor_pickle(read(sample_inputs), what, sample_inputs)
        for legacy in (f"{_WEIGHTS_DIR}{model}.pt", f"{_CONSTANTS_DIR}{model}.pt"):
            if legacy in names:
                _check_tensor_pickle(read(legacy), what, legacy)
        _check_payload_config(read, names, what, c.WEIGHTS_CONFIG_FILENAME_FORMAT.format(model), _WEIGHTS_DIR, c)
        _check_payload_config(read, names, what, c.CONSTANTS_CONFIG_FILENAME_FORMAT.format(model), _CONSTANTS_DIR, c)
        member = c.MODELS_FILENAME_FORMAT.format(model)
        try:
            program = json.loads(read(member))
        except ValueError as exc:
            raise ModelLoadError(f"{what}: member {member} is not valid JSON ({_first_line(exc)})") from None
        _check_program_json(program, what, member)


def _check_payload_config(read, names: set[str], what: str, config: str, folder: str, c) -> None:
    if config not in names:
        return
    try:
        entries = json.loads(read(config)).get("config", {})
        items = list(entries.items())
    except (ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{what}: member {config} is not a valid payload table ({_first_line(exc)})") from None
    for fqn, meta in items:
        path_name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        member = folder + path_name
        if path_name.startswith((c.CUSTOM_OBJ_FILENAME_PREFIX, c.OPAQUE_OBJ_FILENAME_PREFIX)):
            raise ModelLoadError(f"{what}: constant '{fqn}' ({member}) is a pickled Python object, and "
                                 f"unpickling it can run code from the file; {TRUST_HINT}")
        if meta.get("use_pickle"):
            _check_tensor_pickle(read(member), what, member)


def _check_tensor_pickle(blob: bytes, what: str, member: str) -> None:
    """torch's restricted unpickler (tensors, containers, numbers) must accept the member."""
    if not blob:
        return
    try:
        torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelLoadError(f"{what}: member {member} holds pickled objects other than tensors, and "
                             f"unpickling them can run code from the file; {TRUST_HINT}") from None
    except Exception as exc:
        raise ModelLoadError(f"{what}: member {member} is corrupt ({_first_line(exc)})") from None


# Shape expressions as torch writes them (sympy's srepr: "Mul(Integer(2), Symbol('s77', positive=True,
# integer=True))"): sympy class names, keyword flags, numbers, and quoted symbol names or numbers.
# Strings are limited to those because sympy functions sympify (eval) string arguments too.
_EXPR_CHARS = re.compile(r"^[A-Za-z0-9_+\-*/%()<>=!&|~^.,' ]*$")
_STRING = re.compile(r"'([^']*)'")
_STRING_BODY = re.compile(r"^(?:[a-z]+\d+|[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_])(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_SYMPY_NAMES = frozenset({
    # torch.utils._sympy.functions, as the deserializer passes them to sympify
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
    "ToFloat", "Identity", "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or",
    # sympy's own classes in srepr output
    "Add", "Mul", "Pow", "Symbol", "Integer", "Rational", "Float", "Max", "Min", "Abs", "floor", "ceiling",
    "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality", "StrictLessThan",
    "StrictGreaterThan", "LessThan", "GreaterThan", "And", "Or", "Not", "Piecewise", "ExprCondPair", "ITE",
    "true", "false", "True", "False", "BooleanTrue", "BooleanFalse", "oo", "zoo", "nan", "pi", "E",
    "Infinity", "NegativeInfinity", "NegativeOne", "One", "Zero", "Half",
    # keyword flags of Symbol / Float
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "infinite",
    "commutative", "rational", "zero", "nonzero", "even", "odd", "precision", "evaluate",
})
_SYMBOL = re.compile(r"^[a-z]+\d+$")  # s0, u1, zuf0, ...: the names torch gives shape symbols


def safe_expression(text: str) -> bool:
    """True when `text` is arithmetic over shape symbols: nothing eval could turn into code."""
    if not _EXPR_CHARS.match(text) or "__" in text:
        return False
    if any(not _STRING_BODY.match(body) for body in _STRING.findall(text)):
        return False
    stripped = _NUMBER.sub("0", _STRING.sub("0", text))
    if "." in stripped or "'" in stripped:  # attribute access, or an unbalanced quote
        return False
    return all(m.group() in _SYMPY_NAMES or _SYMBOL.match(m.group()) for m in _IDENT.finditer(stripped))


def _check_program_json(node: Any, what: str, member: str) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            expr = item.get("expr_str")
            if isinstance(expr, str) and not safe_expression(expr):
                raise ModelLoadError(f"{what}: member {member} holds the shape expression {expr[:60]!r}, which "
                                     "is not plain arithmetic (torch would evaluate it as Python); the file "
                                     "was not written by torch.export.save")
            target = item.get("target")
            if isinstance(target, str) and "inputs" in item and "outputs" in item and not _allowed_target(target):
                raise ModelLoadError(f"{what}: member {member} has a node calling {target[:80]!r}, which is not "
                                     "a torch operator; refusing to load a graph that calls arbitrary functions")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _allowed_target(name: str) -> bool:
    """Resolve a node target the way torch's deserializer does; accept operators only."""
    from torch._export.serde.serialize import _SYM_OPS

    if name.startswith("#"):  # an extension op: resolved by a handler registered by trusted code
        return True
    roots = {"_operator": operator, "torch": torch, "math": math}
    root = roots.get(name.split(".")[0])
    if root is None:
        return True  # torch keeps it as a string and refuses it as an unsupported target
    target: Any = root
    for part in name.split(".")[1:]:
        if not hasattr(target, part):
            return True  # unresolved: torch keeps the string and refuses it as an unsupported target
        target = getattr(target, part)
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator)):
        return True
    if target in _SYM_OPS:
        return True
    return root in (operator, math) and callable(target) and type(target).__name__ == "builtin_function_or_method"


_guard_lock = threading.Lock()


@contextlib.contextmanager
def restricted_loading() -> Iterator[None]:
    """While torch.export.load runs: every torch.load is weights-only, pickle.loads and torch's
    object unpickler refuse, and sympify refuses expressions that are not plain arithmetic."""
    import sympy
    from torch.export.pt2_archive import _package

    real_load, real_sympify, real_pickle = torch.load, sympy.sympify, _package.pickle
    real_load_obj = torch._C._pickle_load_obj

    def load(f, map_location=None, pickle_module=None, **kwargs):
        kwargs["weights_only"] = True
        return real_load(f, map_location=map_location, **kwargs)

    def sympify(a, *args, **kwargs):
        if isinstance(a, str) and not safe_expression(a):
            raise UnsafeArchive(f"the shape expression {a[:60]!r} is not plain arithmetic")
        return real_sympify(a, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise UnsafeArchive("a constant is a pickled Python object")

    class NoPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)
        UnpicklingError = pickle.UnpicklingError

    with _guard_lock:
        torch.load, sympy.sympify, _package.pickle = load, sympify, NoPickle
        torch._C._pickle_load_obj = refuse
        try:
            yield
        finally:
            torch.load, sympy.sympify, _package.pickle = real_load, real_sympify, real_pickle
            torch._C._pickle_load_obj = real_load_obj


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
