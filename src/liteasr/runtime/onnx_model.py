"""An exported directory run by ONNX Runtime: encoder, language detection and our batched greedy loop
over the decoder graphs with their key/value cache; decoding/transcribe.py builds the prompt and the token budget,
as for every runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liteasr.errors import UserError
from liteasr.models import generation, whisper
from liteasr.runtime.layout import DECODER, DECODER_WITH_PAST, ENCODER, MANIFEST


def session(path: Path, threads: int, device: str = "cpu", profile: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile:
        options.enable_profiling, options.profile_file_prefix = True, profile
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UserError("--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # corrupt or truncated graph: onnxruntime raises its own exception types
        raise UserError(f"{path}: cannot load ONNX graph ({str(exc).splitlines()[0][:200]})") from None


def run_per_window(session, features: np.ndarray) -> np.ndarray:
    """Run a graph on one window at a time. Dynamic int8 takes one activation scale per tensor, i.e. per
    batch: in a batch, a window's outputs would depend on its batch-mates (tiny.en at 0.7, 40 librispeech
    clips at batch 8: WER 49.56 from loops, 20.91 window by window). Running each window alone keeps a
    clip's encoding its own, as a server needs; it costs the encoder its batching gain (RESULTS.md)."""
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: f[None]})[0] for f in features])


class OnnxModel:
    """MODEL = a directory written by `liteasr export`."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import torch
        from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

        self.path, self.name = Path(path), str(path)
        self.manifest = json.loads((self.path / MANIFEST).read_text()) if (self.path / MANIFEST).is_file() else {}
        threads = threads or torch.get_num_threads()  # the same CPU threads as the PyTorch runtime
        self.encoder = session(self.path / ENCODER, threads, device)
        self.decoder = session(self.path / DECODER, threads, device)
        self.decoder_with_past = session(self.path / DECODER_WITH_PAST, threads, device)
        self.generation_config = GenerationConfig.from_pretrained(self.path)
        self.processor = WhisperProcessor(WhisperFeatureExtractor.from_pretrained(self.path),
                                          WhisperTokenizerFast.from_pretrained(self.path))
        self.architecture = self._architecture()
        self.config = self.architecture.config
        layers = self.config.decoder_layers
        self.past_names = [f"past_key_values.{i}.{k}" for i in range(layers)
                           for k in ("decoder.key", "decoder.value", "encoder.key", "encoder.value")]

    def _architecture(self):
        """The model's structure without weights (meta device), for costs and `info`: the checkpoint's
        low-rank layout less the projections the graph runs dense."""
        import torch

        from liteasr.models.hf.configuration_lite_whisper import LiteWhisperConfig
        from liteasr.models.hf.modeling_lite_whisper import LiteWhisperForConditionalGeneration

        values = json.loads((self.path / "config.json").read_text())
        ranks = [dict(r) for r in self.manifest.get("low_rank_config") or []]
        for key in self.manifest.get("fused_to_dense", []):
            index, name = whisper.split_key(key)
            ranks[index].pop(name, None)
        for key in ("model_type", "architectures", "transformers_version"):
            values.pop(key, None)
        config = LiteWhisperConfig(low_rank_config=ranks or None, attention_modes=self.manifest.get("attention_modes"),
                                   **values)
        with torch.device("meta"):
            return LiteWhisperForConditionalGeneration(config).eval()

    @property
    def variable_window(self) -> bool:
        """Exports before windows existed have graphs fixed to 30 s."""
        return bool(self.manifest.get("variable_window"))

    @property
    def window(self) -> whisper.WindowPolicy:
        return whisper.WindowPolicy(**self.manifest["window"]) if self.manifest.get("window") else whisper.PADDED

    def features(self, audios: list[np.ndarray], frames: int | None = None) -> np.ndarray:
        return whisper.features(self.processor, audios, frames=frames).numpy()

    def encode(self, features) -> np.ndarray:
        features = np.ascontiguousarray(features.numpy() if hasattr(features, "numpy") else features, dtype=np.float32)
        if self.manifest.get("quantize") == "int8":
            return run_per_window(self.encoder, features)
        return self.encoder.run(None, {"input_features": features})[0]

    def detect_language(self, encoded: np.ndarray) -> tuple[list[str], list[float]]:
        """Each window's language and its probability: one decoder step on <|startoftranscript|>."""
        config = self.generation_config
        start = np.full((len(encoded), 1), config.decoder_start_token_id, dtype=np.int64)
        logits = self.decoder.run(["logits"], {"input_ids": start, "encoder_hidden_states": encoded})[0][:, -1]
        return generation.language_probs_from_logits(config, logits)

    def decode(self, encoded: np.ndarray, prompt, budget: int) -> list[list[int]]:
        """Greedy tokens after `prompt` ([batch, length] ids, transcribe.decode_windows builds it), at most
        `budget` of them, with the same token suppression as the PyTorch loop."""
        config = self.generation_config
        ids = np.asarray(prompt, dtype=np.int64)
        eot = config.eos_token_id
        suppress = np.array(config.suppress_tokens or [], dtype=np.int64)
        begin = np.array(config.begin_suppress_tokens or [], dtype=np.int64)
        out = self.decoder.run(None, {"input_ids": ids, "encoder_hidden_states": encoded})
        cross = {i: out[1 + 4 * i + 2 : 1 + 4 * i + 4] for i in range(self.config.decoder_layers)}
        cache = {i: out[1 + 4 * i : 1 + 4 * i + 2] for i in range(self.config.decoder_layers)}
        logits = out[0][:, -1]
        tokens, done = [], np.zeros(len(ids), dtype=bool)
        for step in range(budget):
            logits[:, suppress] = -np.inf
            if step == 0:
                logits[:, begin] = -np.inf
            token = np.where(done, eot, logits.argmax(-1))
            tokens.append(token)
            done |= token == eot
            if done.all() or step == budget - 1:
                break
            feed = {"input_ids": token[:, None].astype(np.int64)}
            for i in range(self.config.decoder_layers):
                feed.update(zip(self.past_names[4 * i : 4 * i + 4], (*cache[i], *cross[i])))
            out = self.decoder_with_past.run(None, feed)
            logits = out[0][:, -1]
            cache = {i: out[1 + 2 * i : 3 + 2 * i] for i in range(self.config.decoder_layers)}
        return np.stack(tokens, 1).tolist() if tokens else [[] for _ in ids]
