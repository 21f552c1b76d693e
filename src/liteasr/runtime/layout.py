"""The file layout of an exported directory (Optimum's ORTModelForSpeechSeq2Seq), shared by the exporter,
the quantizer and the ONNX Runtime model."""

from __future__ import annotations

from pathlib import Path

ENCODER, DECODER, DECODER_WITH_PAST = "encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"
ALIGNMENT = "alignment_weights"  # decoder_model.onnx's output beyond Optimum's: word timestamps
MANIFEST = "liteasr_export.json"  # what liteasr needs beyond Optimum's files: low-rank layout, attention, int8


def is_onnx_dir(path: Path) -> bool:
    return (path / ENCODER).is_file() and (path / DECODER).is_file()
