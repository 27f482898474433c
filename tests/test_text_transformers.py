"""transformers 5 text encoders (random init from config objects) compile to x86_64-fp32 and
match torch: int64 token ids and attention mask in, both TFLite and TVM artifacts."""

import numpy as np
import pytest

pytest.importorskip("transformers", reason="transformers is an optional extra: pip install -e '.[models]'")

import edgec  # noqa: E402
from benchmarks.text_encoders import build_encoder  # noqa: E402


@pytest.mark.parametrize("kind,seq,hidden", [("bert", 8, 32), ("distilbert", 16, 64)])
def test_tiny_encoder_compiles_and_matches_torch(kind, seq, hidden, tmp_path):
    model, inputs = build_encoder(kind, layers=2, hidden=hidden, heads=4, seq=seq)
    art = edgec.compile(model, inputs, target="x86_64-fp32", out_dir=tmp_path, name=kind)
    report = art.report
    assert [i["dtype"] for i in report["inputs"]] == ["int64", "int64"]
    for fmt in ("tflite", "tvm"):
        figures = report["verification"]["artifacts"][fmt]["vs_torch"]
        assert figures["max_rel_error"] <= 1e-4, (fmt, figures)
    ops = next(a for a in report["artifacts"] if a["format"] == "tflite")["lowering"]["ops"]
    # One run-time lookup (words); position and token-type lookups have constant ids and fold;
    # the mask GatherND becomes a reshape.
    assert ops["GATHER"] == 1 and "GATHER_ND" not in ops
    # Both artifacts also follow a mask they were not verified with (no padding at all).
    import torch

    ids, mask = inputs[0].numpy(), np.ones_like(inputs[1].numpy())
    with torch.no_grad():
        expected = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    for fmt in ("tflite", "tvm"):
        (got,) = art.run(ids, mask, fmt=fmt)
        assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected)), fmt
