"""Quantize a float TFLite model to full int8 with the TensorFlow Lite converter's own quantizer.

Runs inside the optional TensorFlow environment (`make peers` creates .venv-peers), never in
edgec's: TensorFlow pins protobuf/numpy versions that clash with onnx.

    .venv-peers/bin/python benchmarks/peers/tflite_converter_int8.py float.tflite calib.npz out.tflite [--io int8]

It makes exactly the calls `tf.lite.TFLiteConverter.convert()` makes after its float
conversion when `optimizations=[DEFAULT]`, a `representative_dataset`, and
`supported_ops=[TFLITE_BUILTINS_INT8]` are set (TFLiteConverterBase._quantize in
tensorflow/lite/python/lite.py): add intermediate tensors, calibrate with the representative
data, then the MLIR quantizer (experimental_new_quantizer, the default) with per-channel
weights. The float graph is edgec's float TFLite of the same model, so the two int8 models
differ only in how they were quantized.
"""

import argparse

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert
from tensorflow.lite.python.optimize import calibrator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("float_tflite")
    ap.add_argument("calibration_npz")
    ap.add_argument("out")
    ap.add_argument("--io", choices=["float", "int8"], default="float")
    args = ap.parse_args()

    model = open(args.float_tflite, "rb").read()
    samples = np.load(args.calibration_npz)["x"].astype(np.float32)
    interp = tf.lite.Interpreter(model_content=model)
    shape = tuple(interp.get_input_details()[0]["shape"])

    def representative_dataset():
        for s in samples:
            yield [s.reshape(shape)]

    with_intermediates = calibrator.add_intermediate_tensors(model)
    calibrated = calibrator.Calibrator(with_intermediates).calibrate(representative_dataset)
    io_type = tf.int8 if args.io == "int8" else tf.float32
    quantized = convert.mlir_quantize(calibrated, False, input_data_type=io_type, output_data_type=io_type)
    with open(args.out, "wb") as f:
        f.write(quantized)


if __name__ == "__main__":
    main()
