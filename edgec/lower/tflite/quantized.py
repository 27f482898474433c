"""Quantized TFLite tensors: QuantizationParametersT, integer constants, int4 packing.

TFLite stores per-axis parameters with `quantized_dimension` counted in the tensor's own
(TFLite) layout, so a constant's axis moves with the permutation it is stored in: ONNX
OIHW conv weights stored OHWI keep axis 0, depthwise [O,1,kh,kw] stored 1HWO get axis 3,
ConvTranspose's IOHW axis 1 becomes axis 0 of OHWI, MatMul's [K,N] axis 1 becomes axis 0 of
FULLY_CONNECTED's [N,K].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite.qdq import ActivationParams, QuantizedConstant

if TYPE_CHECKING:  # the context imports this module
    from edgec.lower.tflite.context import LoweringContext

INT8 = schema.TensorType.INT8
INT4 = schema.TensorType.INT4
INT16 = schema.TensorType.INT16
INT32 = schema.TensorType.INT32
INT64 = schema.TensorType.INT64

_TYPES = {4: INT4, 8: INT8, 16: INT16, 32: INT32}
_ACTIVATION_DTYPES = {8: np.int8, 16: np.int16}

# The operator version the TFLite quantizer writes for an op's int8 form
# (tensorflow/lite/tools/optimize/operator_property.cc); version 1 is the float form.
INT8_OP_VERSIONS = {
    "ADD": 2, "SUB": 2, "MUL": 2, "MAXIMUM": 2, "MINIMUM": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3,
    "TRANSPOSE_CONV": 3, "FULLY_CONNECTED": 4, "BATCH_MATMUL": 2, "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2,
    "MEAN": 2, "SUM": 2, "REDUCE_MAX": 2, "CONCATENATION": 2, "SPLIT": 2, "SLICE": 2, "STRIDED_SLICE": 2,
    "PAD": 2, "PADV2": 2, "MIRROR_PAD": 2, "TRANSPOSE": 2, "RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2,
    "LOGISTIC": 2, "TANH": 2, "SOFTMAX": 2, "LEAKY_RELU": 2, "RELU": 2, "RELU6": 2,
}
# ... and for its 16x8 form (int16 activations; operator_property.cc / op_version.cc). ADD and
# SUB take general (not power-of-two) int16 scales from version 5 / 3 with pot_scale_int16 off.
INT16_OP_VERSIONS = {
    "ADD": 5, "SUB": 3, "MUL": 4, "CONV_2D": 4, "DEPTHWISE_CONV_2D": 5, "FULLY_CONNECTED": 7,
    "BATCH_MATMUL": 3, "AVERAGE_POOL_2D": 3, "MAX_POOL_2D": 3, "MEAN": 3, "CONCATENATION": 3, "TRANSPOSE": 5,
    "LOGISTIC": 3, "TANH": 3, "SOFTMAX": 3, "RELU": 3, "QUANTIZE": 3, "DEQUANTIZE": 4,
}


def activation_dtype(params: ActivationParams) -> type:
    """numpy type of a tensor held with `params`: int8, or int16 in a 16x8 layer."""
    return _ACTIVATION_DTYPES[params.bits]


def per_tensor(params: ActivationParams) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale = [float(params.scale)]
    q.zeroPoint = [int(params.zero_point)]
    q.quantizedDimension = 0
    return q


def per_axis(scale: np.ndarray, zero_point: np.ndarray, dim: int) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.reshape(scale, -1)]
    q.zeroPoint = [int(z) for z in np.reshape(zero_point, -1)]
    q.quantizedDimension = int(dim)
    return q


def tensor_params(tensor: schema.TensorT) -> ActivationParams | None:
    """The per-tensor int8 (or int16) parameters of a TFLite tensor, or None when it is neither."""
    q = tensor.quantization
    if tensor.type not in (INT8, INT16) or q is None or q.scale is None or len(q.scale) != 1:
        return None
    return ActivationParams(float(np.float32(q.scale[0])), int(q.zeroPoint[0]), 16 if tensor.type == INT16 else 8)


def quantize_value(x: float | np.ndarray, params: ActivationParams) -> np.ndarray:
    """Real values on an int8 (int16) grid, rounding half to even as ONNX QuantizeLinear does."""
    q = np.rint(np.asarray(x, np.float64) / np.float32(params.scale)) + params.zero_point
    info = np.iinfo(activation_dtype(params))
    return np.clip(q, info.min, info.max).astype(activation_dtype(params))


def constant_in_layout(qc: QuantizedConstant, rank: int, perm: Sequence[int]
                       ) -> tuple[np.ndarray, int, schema.QuantizationParametersT]:
    """(stored data, TensorType, quantization) of a quantized constant aligned to `rank`
    (numpy broadcasting) and stored with `perm`. int4 data comes back packed two per byte."""
    values = qc.values
    lead = rank - values.ndim
    values = values.reshape((1,) * lead + values.shape).transpose(perm) if values.ndim else values
    if qc.per_axis:
        quantization = per_axis(qc.scale, qc.zero_point, list(perm).index(qc.axis + lead))
    else:
        quantization = per_axis(qc.scale, qc.zero_point, 0)
    data = np.ascontiguousarray(values)
    if qc.bits == 4:
        data = pack_int4(data)
    return data, _TYPES[qc.bits], quantization


def pack_int4(values: np.ndarray) -> np.ndarray:
    """int4 values (held in int8) packed two per byte, the first in the low nibble, as
    TFLite's INT4 tensors store them (tensor_utils::PackInt8IntoDenseInt4)."""
    flat = np.asarray(values, np.int8).reshape(-1)
    if flat.size % 2:
        flat = np.append(flat, np.int8(0))
    nibbles = flat.astype(np.uint8) & 0x0F
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def bias_scale(input_params: ActivationParams, weight: QuantizedConstant) -> np.ndarray:
    """The int32 bias scale TFLite's kernels expect: input scale x weight scale (per channel)."""
    return (np.float32(input_params.scale) * np.atleast_1d(weight.scale).astype(np.float32)).astype(np.float32)


def int32_bias(bias: QuantizedConstant | None, real_bias: np.ndarray | None, scale: np.ndarray,
               channels: int, dtype: type = np.int32) -> np.ndarray:
    """The bias integers on `scale`: the graph's own when its scale is that one (edgec's QDQ
    form), else the real bias rounded onto it (a QDQ graph from another tool, or a 16x8 bias
    the QDQ graph keeps on a coarser scale to fit int32). `dtype` int64 for 16x8 kernels."""
    scale = np.broadcast_to(scale, (channels,))
    if bias is None and real_bias is None:
        return np.zeros(channels, dtype)
    if bias is not None and bias.values.size == channels:
        stored = np.broadcast_to(np.atleast_1d(bias.scale).astype(np.float32), (channels,))
        if np.allclose(stored, scale, rtol=1e-6, atol=0):
            return bias.values.reshape(channels).astype(dtype)
    q = np.rint(np.asarray(real_bias, np.float64).reshape(-1) / scale.astype(np.float64))
    return np.clip(np.broadcast_to(q, (channels,)), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def bias_tensor(ctx: LoweringContext, bias: ir.Value | None, x: ir.Value, weight: ir.Value, channels: int) -> int:
    """The int32 bias of an int8 conv / transposed conv / FC reading `x` with `weight`
    (zeros when the node has none: TFLite's int8 kernels take the bias from it anyway); int64
    when `x` is int16, as the 16x8 kernels want."""
    scale = bias_scale(ctx.qparams(x), ctx.quant.constants[weight])
    stored = ctx.quant.constants.get(bias) if bias is not None else None
    real = ctx.const(bias) if bias is not None else None
    values = int32_bias(stored, real, scale, channels, np.int64 if ctx.qparams(x).bits == 16 else np.int32)
    return ctx.const_tensor(values, "bias", quantization=per_axis(scale, np.zeros(scale.shape, np.int64), 0))
