"""Runtimes: the engine that runs a MODEL, picked from its spec.

- a Hugging Face (lite-)Whisper directory, Hub id or short name: PyTorch (`whisper.LoadedModel`, the default);
- a directory written by `liteasr export`: ONNX Runtime (`OnnxModel`);
- `ctranslate2:SPEC[:COMPUTE_TYPE]`: CTranslate2, the engine of faster-whisper (`CT2Model`).

Every runtime gives `processor`, `path`, `name` and the model's structure (`architecture`: for costs and
`info`); transcription goes through transcribe.transcribe and encoder timing through bench.encoder_latency
whatever the runtime, so WER and speed are measured by the same code.
"""

from __future__ import annotations

from pathlib import Path

from liteasr.errors import UserError
from liteasr.models import whisper


def runtime_of(spec: str) -> str:
    """Which engine runs the MODEL `spec`: `ctranslate2`, `onnxruntime` or `pytorch`."""
    from liteasr.runtime.layout import is_onnx_dir

    spec = str(spec)
    if spec.startswith("ctranslate2:"):
        return "ctranslate2"
    return "onnxruntime" if Path(spec).is_dir() and is_onnx_dir(Path(spec)) else "pytorch"


def load(spec: str, device: str = "cpu", dtype=None, attention: str = "auto", threads: int | None = None):
    import torch

    spec = str(spec)
    if runtime_of(spec) == "ctranslate2":
        from liteasr.runtime.ct2_model import CT2Model

        return CT2Model(spec, device, threads)
    if runtime_of(spec) == "onnxruntime":
        from liteasr.runtime.onnx_model import OnnxModel

        if dtype not in (None, torch.float32):
            raise UserError(f"{spec}: an ONNX export runs in the precision it was exported with (use --dtype float32)")
        return OnnxModel(spec, device, threads)
    return whisper.load(spec, device=device, dtype=dtype or torch.float32, attention=attention)


def architecture(loaded):
    """The nn.Module whose structure describes the model: the model itself for PyTorch, a weightless
    copy for the other runtimes."""
    return loaded.architecture
