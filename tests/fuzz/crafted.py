"""Crafted hostile files for the bad-input tests: each payload, if ever run, writes a marker file."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import torch


class Payload:
    """Unpickling this runs `open(marker, 'w')`: the proof that code from a file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def payload_pickle(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=2)


def payload_torch_save(marker: Path, wrap=lambda p: ((p,), {})) -> bytes:
    buf = io.BytesIO()
    torch.save(wrap(Payload(marker)), buf)
    return buf.getvalue()


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def save_exported(path: Path) -> Path:
    torch.manual_seed(0)
    program = torch.export.export(TinyNet().eval(), (torch.randn(1, 3, 8, 8),))
    torch.export.save(program, str(path))
    return path


def rewrite_zip(src: Path, dst: Path, edit) -> Path:
    """Copy a zip archive, letting edit(name_without_root, data) return new bytes (or None to drop)."""
    extra = {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            rel = info.filename[len(root) + 1:]
            data = edit(rel, zin.read(info.filename), extra)
            if data is not None:
                zout.writestr(info.filename, data)
        for rel, data in extra.items():
            zout.writestr(f"{root}/{rel}", data)
    return dst


def pt2_with_payload(good: Path, dst: Path, marker: Path, where: str) -> Path:
    """A torch.export archive whose `where` part runs a payload under torch.export.load as torch ships it.

    where: sample_inputs | pickled_weight | opaque_constant | shape_expression | node_target
    """
    def edit(rel, data, extra):
        if where == "sample_inputs" and rel.startswith("data/sample_inputs/"):
            return payload_torch_save(marker)
        if where == "pickled_weight" and rel == "data/weights/model_weights_config.json":
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            first["path_name"] = "weight_payload"
            extra["data/weights/weight_payload"] = payload_torch_save(marker, wrap=lambda p: p)
            return json.dumps(config).encode()
        if where == "opaque_constant" and rel == "data/constants/model_constants_config.json":
            from torch.export.pt2_archive.constants import OPAQUE_OBJ_FILENAME_PREFIX

            config = json.loads(data)
            config["config"]["evil"] = {"path_name": f"{OPAQUE_OBJ_FILENAME_PREFIX}0", "is_param": False,
                                        "use_pickle": True, "tensor_meta": None}
            extra[f"data/constants/{OPAQUE_OBJ_FILENAME_PREFIX}0"] = payload_pickle(marker)
            return json.dumps(config).encode()
        if where == "shape_expression" and rel.startswith("models/") and rel.endswith(".json"):
            program = json.loads(data)
            code = f"exec(\"open({str(marker)!r}, 'w').write('ran')\")"
            meta = next(iter(program["graph_module"]["graph"]["tensor_values"].values()))
            meta["sizes"][0] = {"as_expr": {"expr_str": code, "hint": {"as_int": 1}}}
            return json.dumps(program).encode()
        if where == "node_target" and rel.startswith("models/") and rel.endswith(".json"):
            program = json.loads(data)
            for node in program["graph_module"]["graph"]["nodes"]:
                if "relu" in node["target"]:
                    node["target"] = "torch.ops.load_library"
            return json.dumps(program).encode()
        return data

    return rewrite_zip(good, dst, edit)
