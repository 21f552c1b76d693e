"""int8 graphs: ONNX Runtime dynamic quantization of MatMul weights (activations quantized on the fly),
except the MatMuls where int8 measured slower than fp32 on this CPU (thin factors: quantizing their
input costs more than the integer kernel saves)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .export import DECODER, DECODER_WITH_PAST, ENCODER

ROWS = 1500  # encoder frames per 30 s window: the activation height every encoder MatMul sees


def weight_matmuls(model) -> dict[str, tuple[int, int]]:
    """MatMul nodes whose second input is a 2-D weight: node name -> (K, N)."""
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return {n.name: weights[n.input[1]] for n in model.graph.node
            if n.op_type == "MatMul" and len(weights.get(n.input[1], ())) == 2}


def _single_matmul(k: int, n: int, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def _median_seconds(session, x, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def slower_in_int8(shapes: set[tuple[int, int]], workdir: Path, threads: int, repeats: int = 7) -> set[tuple[int, int]]:
    """Weight shapes (K, N) whose MatMul over ROWS rows runs slower quantized than in fp32, measured side by
    side (fp32, int8, fp32, int8, ...) on one-MatMul graphs."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .onnx_model import session

    slower = set()
    for k, n in sorted(shapes):
        fp32, int8 = workdir / f"mm_{k}x{n}.onnx", workdir / f"mm_{k}x{n}.int8.onnx"
        _single_matmul(k, n, fp32)
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
        a, b = session(fp32, threads), session(int8, threads)
        x = np.random.default_rng(1).standard_normal((ROWS, k)).astype(np.float32)
        t = {"fp32": [], "int8": []}
        for _ in range(3):
            t["fp32"].append(_median_seconds(a, x, repeats))
            t["int8"].append(_median_seconds(b, x, repeats))
        if np.median(t["int8"]) > np.median(t["fp32"]):
            slower.add((k, n))
        fp32.unlink(), int8.unlink()
    return slower


def quantize_graph(src: Path, dst: Path, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude,
                     extra_options={"MatMulConstBOnly": True})


def quantize_dir(directory: Path, threads: int | None = None, fallback: bool = True) -> list[str]:
    """Quantize the three graphs in place; returns the encoder MatMuls kept in fp32 (measured slower in int8)."""
    import onnx
    import torch

    threads = threads or torch.get_num_threads()
    encoder = onnx.load(directory / ENCODER)
    matmuls = weight_matmuls(encoder)
    slower = slower_in_int8(set(matmuls.values()), directory, threads) if fallback else set()
    keep = sorted(name for name, shape in matmuls.items() if shape in slower)
    for name in (ENCODER, DECODER, DECODER_WITH_PAST):
        fp32 = directory / f"{name}.fp32"
        (directory / name).rename(fp32)
        quantize_graph(fp32, directory / name, keep if name == ENCODER else [])
        fp32.unlink()
    return keep
