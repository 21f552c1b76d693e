"""`liteasr export`: a (lite-)Whisper checkpoint as ONNX graphs in the file layout Optimum reads.

    encoder_model.onnx            input_features -> last_hidden_state
    decoder_model.onnx            input_ids, encoder_hidden_states -> logits, present.* (self and cross caches),
                                  alignment_weights (word timestamps)
    decoder_with_past_model.onnx  input_ids, past_key_values.* -> logits, present.*.decoder.*
    config.json, generation_config.json, tokenizer and preprocessor files
    liteasr_export.json           what liteasr needs beyond that: low-rank layout, attention modes, quantization
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from liteasr.atomic import atomic_dir
from liteasr.errors import UserError
from liteasr.models import generation, whisper
from liteasr.runtime import graphs, runtime_of
from liteasr.runtime.layout import ALIGNMENT, DECODER, DECODER_WITH_PAST, ENCODER, MANIFEST

OPSET = 18
TWO_GB = 2**31


def _export(module, args, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    """TorchScript-based export: seconds instead of minutes for torch.export, and the graphs here are plain
    (no data-dependent control flow). External data only when the protobuf limit (2 GB) demands it."""
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic, external_data=size >= TWO_GB)


def export_encoder(model, path: Path, fuse_above: float = graphs.FUSE_ABOVE) -> graphs.Encoder:
    encoder = graphs.Encoder(model, fuse_above).eval()
    c = model.config
    feats = torch.zeros(2, c.num_mel_bins, 2 * c.max_source_positions)
    # windows of any length up to 30 s (whisper.WindowPolicy): frames are a dynamic axis
    _export(encoder, (feats,), path, ["input_features"], ["last_hidden_state"],
            {"input_features": {0: "batch", 2: "frames"}, "last_hidden_state": {0: "batch", 1: "encoder_frames"}})
    return encoder


def export_decoder(model, path: Path, with_past: bool, word_timestamps: bool = True) -> None:
    """`word_timestamps`: the decoder without past also outputs the alignment heads' weights (False: Optimum's
    outputs only, as exports made before word timestamps)."""
    c = model.config
    aligning = generation.alignment_heads(model.generation_config, c) if word_timestamps and not with_past else []
    decoder = graphs.Decoder(model, with_past, aligning).eval()
    layers, heads, dh = c.decoder_layers, c.decoder_attention_heads, c.d_model // c.decoder_attention_heads
    inputs, outputs = graphs.decoder_names(layers, with_past)
    if aligning:
        outputs = outputs + [ALIGNMENT]
    b, t = 2, 3
    ids = torch.zeros(b, 1 if with_past else t, dtype=torch.long)
    if with_past:
        self_cache, cross_cache = torch.zeros(b, heads, t, dh), torch.zeros(b, heads, c.max_source_positions, dh)
        args = (ids, *[(self_cache, self_cache, cross_cache, cross_cache)[i % 4] for i in range(4 * layers)])
        # cross-attention keys and values span the encoder window, whatever its length
        dynamic = {n: {0: "batch", 2: "past"} if "decoder" in n and n.startswith("past") else
                   {0: "batch", 2: "encoder_frames"} for n in inputs[1:]}
        dynamic.update({n: {0: "batch", 2: "total"} for n in outputs[1:]})
        dynamic["input_ids"] = {0: "batch"}
    else:
        args = (ids, torch.zeros(b, c.max_source_positions, c.d_model))
        dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "encoder_hidden_states": {0: "batch", 1: "encoder_frames"}}
        dynamic.update({n: {0: "batch", 2: "tokens"} if ".decoder." in n else {0: "batch", 2: "encoder_frames"}
                        for n in outputs[1:]})
        dynamic[ALIGNMENT] = {0: "batch", 2: "tokens", 3: "encoder_frames"}
    dynamic["logits"] = {0: "batch", 1: "tokens"}
    _export(decoder, args, path, inputs, outputs, dynamic)


def _base_config(model) -> dict:
    """config.json as a plain Whisper (what Optimum and transformers.js know); the low-rank layout goes to
    liteasr_export.json."""
    values = model.config.to_dict()
    for key in ("low_rank_config", "attention_modes", "auto_map", "architectures", "transformers_version"):
        values.pop(key, None)
    values.update(model_type="whisper", architectures=["WhisperForConditionalGeneration"])
    return values


def probe_features(loaded, audios: list | None) -> np.ndarray:
    """Encoder windows the int8 accuracy fallback measures on: the given audio, or noise without it."""
    from liteasr.runtime.quantize import noise_probe

    if not audios:
        return noise_probe(loaded.processor.feature_extractor)
    return whisper.features(loaded.processor, audios).numpy()


def export(spec: str, output: str | Path, quantize: str | None = None, overwrite: bool = False,
           fuse_above: float = graphs.FUSE_ABOVE, progress: bool = True, probe_audio: list | None = None,
           error_share: float | None = None) -> Path:
    """`probe_audio`: windows (16 kHz arrays) on which int8 error is measured per MatMul; `error_share`:
    keep in fp32 the fewest encoder MatMuls carrying this share of it (default quantize.ERROR_SHARE)."""
    from liteasr.runtime.quantize import ERROR_SHARE

    if quantize not in (None, "int8"):
        raise UserError(f"--quantize must be int8, got {quantize!r}")
    share = ERROR_SHARE if error_share is None else error_share
    if not 0 <= share <= 1:
        raise UserError(f"--int8-error-share must be in [0, 1], got {share}")
    engine = runtime_of(spec)
    if engine != "pytorch":
        raise UserError(f"{spec} runs in {'CTranslate2' if engine == 'ctranslate2' else 'ONNX Runtime'}: "
                        "export takes a PyTorch model (a liteasr checkpoint, a Hub id or a name such as tiny.en)")
    loaded = whisper.load(spec)
    model = loaded.model
    with atomic_dir(output, overwrite=overwrite) as tmp:
        steps = tqdm(total=4 if quantize else 3, desc="exporting", unit="graph", disable=not progress)
        encoder = export_encoder(model, tmp / ENCODER, fuse_above)
        steps.update()
        export_decoder(model, tmp / DECODER, with_past=False)
        steps.update()
        export_decoder(model, tmp / DECODER_WITH_PAST, with_past=True)
        steps.update()
        fallback = {}
        if quantize:
            from liteasr.runtime.quantize import quantize_dir

            fallback = quantize_dir(tmp, probe_features(loaded, probe_audio), share=share, progress=progress)
            steps.update()
        steps.close()
        (tmp / "config.json").write_text(json.dumps(_base_config(model), indent=2))
        model.generation_config.save_pretrained(tmp)
        loaded.processor.save_pretrained(tmp)
        manifest = {"source": str(spec), "format": "onnx", "quantize": quantize, "opset": OPSET,
                    "low_rank_config": getattr(model.config, "low_rank_config", None),
                    "attention_modes": getattr(model.config, "attention_modes", None),
                    "fused_to_dense": graphs.fused_projections(encoder), "fuse_above": fuse_above,
                    "fp32_fallback": fallback, "int8_error_share": share if quantize else None,
                    "int8_probe": None if not quantize else f"{len(probe_audio)} windows" if probe_audio else "noise",
                    "variable_window": True, "window": whisper.WindowPolicy.from_config(model.config).to_dict(),
                    "alignment_heads": generation.alignment_heads(model.generation_config, model.config)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        for name in ("liteasr.json",):  # calibration hashes: eval refuses clips it was calibrated on
            if (loaded.path / name).is_file():
                shutil.copy(loaded.path / name, tmp / name)
    return Path(output)

