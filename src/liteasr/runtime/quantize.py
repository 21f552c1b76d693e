"""int8 graphs: ONNX Runtime dynamic quantization of MatMul weights (activations quantized on the fly),
with two fp32 fallbacks for the encoder, both measured at export time:

- speed: MatMuls whose weight shape runs slower quantized than in fp32 on this CPU (thin factors:
  quantizing their input costs more than the integer kernel saves);
- accuracy: the fewest MatMuls that carry most of the int8 error of the encoder output (measured one
  MatMul at a time on probe windows). In Whisper one projection dominates: the last layer's fc2, whose
  input (GELU output) has outlier channels that per-tensor activation quantization flattens.

Weights are quantized per output channel (a factor's columns differ in scale by orders of magnitude) and
to 7 bits (`reduce_range`): on CPUs without VNNI the u8 x s8 kernels add pairs of products in int16, which
saturates with full 8-bit weights. On tiny.en at 0.7, encoder-output error of per-tensor 8-bit weights
was 0.0102 and of per-channel 7-bit 0.0067 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np

from liteasr.runtime.layout import DECODER, DECODER_WITH_PAST, ENCODER

ROWS = 1500  # encoder frames per 30 s window: the activation height every encoder MatMul sees
ERROR_SHARE = 0.5  # keep in fp32 the fewest encoder MatMuls that together carry this share of the int8 error
OPTIONS = dict(per_channel=True, reduce_range=True)


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
    from liteasr.runtime.onnx_model import session

    slower = set()
    for k, n in sorted(shapes):
        fp32, int8 = workdir / f"mm_{k}x{n}.onnx", workdir / f"mm_{k}x{n}.int8.onnx"
        _single_matmul(k, n, fp32)
        quantize_graph(fp32, int8, [])
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


def noise_probe(feature_extractor, seconds: float = 20.0) -> np.ndarray:
    """Probe windows when no audio is given: white noise at two levels (the error ranking of speech and of
    noise agreed on tiny.en: the same MatMuls lead)."""
    from liteasr.data.audio import SAMPLE_RATE

    rng = np.random.default_rng(0)
    audio = [(rng.standard_normal(int(SAMPLE_RATE * seconds)) * level).astype(np.float32) for level in (0.01, 0.1)]
    return feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features.astype(np.float32)


def int8_error_by_matmul(encoder: Path, features: np.ndarray, workdir: Path, threads: int,
                         progress: bool = False) -> dict[str, float]:
    """Relative squared error of the encoder output when that MatMul alone is int8, on `features`."""
    import onnx
    from tqdm.auto import tqdm

    from liteasr.runtime.onnx_model import run_per_window, session

    def run(path):  # as OnnxModel runs an int8 encoder: batch-mates would share activation scales
        return run_per_window(session(path, threads), features).astype(np.float64)

    reference = run(encoder)
    energy = float((reference ** 2).sum())
    names = list(weight_matmuls(onnx.load(encoder)))
    errors, one = {}, workdir / "one_int8.onnx"
    for name in tqdm(names, desc="int8 error per MatMul", unit="MatMul", disable=not progress, leave=False):
        quantize_graph(encoder, one, [n for n in names if n != name])
        errors[name] = float(((run(one) - reference) ** 2).sum()) / energy
    one.unlink()
    return errors


def least_accurate(errors: dict[str, float], share: float = ERROR_SHARE, fp32: tuple[str, ...] = ()) -> list[str]:
    """The fewest MatMuls beyond `fp32` (kept in fp32 anyway) whose single-MatMul int8 errors, with those
    of `fp32`, add up to `share` of their sum."""
    total, kept = sum(errors.values()), []
    carried = sum(errors.get(name, 0.0) for name in fp32)
    for name, error in sorted(errors.items(), key=lambda kv: -kv[1]):
        if total <= 0 or carried >= share * total:
            break
        if name not in fp32:
            kept.append(name)
            carried += error
    return kept


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization warns on the root logger ("consider pre-processing") for every graph."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_graph(src: Path, dst: Path, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude,
                         extra_options={"MatMulConstBOnly": True}, **OPTIONS)


def quantize_dir(directory: Path, probe: np.ndarray, threads: int | None = None, speed: bool = True,
                 share: float = ERROR_SHARE, progress: bool = False) -> dict[str, list[str]]:
    """Quantize the three graphs in place; returns the encoder MatMuls kept in fp32, by reason."""
    import onnx
    import torch

    threads = threads or torch.get_num_threads()
    matmuls = weight_matmuls(onnx.load(directory / ENCODER))
    slower = slower_in_int8(set(matmuls.values()), directory, threads) if speed else set()
    keep = {"slower in int8": sorted(name for name, shape in matmuls.items() if shape in slower)}
    errors = int8_error_by_matmul(directory / ENCODER, probe, directory, threads, progress) if share > 0 else {}
    keep["int8 error"] = sorted(least_accurate(errors, share, tuple(keep["slower in int8"])))
    for name in (ENCODER, DECODER, DECODER_WITH_PAST):
        fp32 = directory / f"{name}.fp32"
        (directory / name).rename(fp32)
        quantize_graph(fp32, directory / name, sorted({*keep["slower in int8"], *keep["int8 error"]}) if name == ENCODER else [])
        fp32.unlink()
    return keep
