"""Compile a torch model to full int8 TFLite the way Google's own tools do it: litert-torch
converts the module to a float TFLite model, ai-edge-quantizer calibrates it and quantizes it
with its static int8 recipe (int8 weights per channel, int8 activations, min/max).

Runs inside the optional environment .venv-litert-torch (`make peers-litert-torch`), never in
edgec's: litert-torch pulls jax, transformers and its own converter.

    .venv-litert-torch/bin/python benchmarks/peers/litert_torch_int8.py model.pt2 calib.npz out.tflite

model.pt2 is a torch.export ExportedProgram (what edgec's zoo module is exported to, so both
tools start from the same weights); calib.npz holds the calibration samples stacked on axis 0
under "x". Prints one JSON line with the time of each step.
"""

import argparse
import json
import time

import numpy as np


def main() -> None:
    start = time.perf_counter()
    ap = argparse.ArgumentParser()
    ap.add_argument("program")
    ap.add_argument("calibration_npz")
    ap.add_argument("out")
    args = ap.parse_args()

    import litert_torch
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    timings = {"import_s": time.perf_counter() - start}
    t = time.perf_counter()
    program = torch.export.load(args.program)
    module = program.module()
    example = tuple(a for a in program.example_inputs[0]) if program.example_inputs else None
    samples = np.load(args.calibration_npz)["x"].astype(np.float32)
    if example is None:
        example = (torch.from_numpy(samples[:1]),)
    float_model = litert_torch.convert(module, example).model_content()
    timings["convert_s"] = time.perf_counter() - t

    t = time.perf_counter()
    runner = Interpreter(model_content=float_model).get_signature_runner()
    (input_name,) = runner.get_input_details().keys()
    shape = tuple(runner.get_input_details()[input_name]["shape"])
    qt = quantizer.Quantizer(float_model, recipe.static_wi8_ai8())
    calibration = qt.calibrate({"serving_default": [{input_name: s.reshape(shape)} for s in samples]})
    timings["calibrate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    result = qt.quantize(calibration, enable_progress_report=False)
    with open(args.out, "wb") as f:
        f.write(result.quantized_model)
    timings["quantize_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    print(json.dumps({"samples": int(len(samples)), "timings": timings}))


if __name__ == "__main__":
    main()
