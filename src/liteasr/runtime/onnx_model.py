"""An exported directory run by ONNX Runtime: encoder, language detection and the decoder graphs with their
key/value cache as a stepper; decoding/ builds the prompt and the token budget and runs the search, as for every
runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liteasr.errors import UserError
from liteasr.models import generation, whisper
from liteasr.runtime.layout import ALIGNMENT, DECODER, DECODER_WITH_PAST, ENCODER, MANIFEST


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

    @property
    def aligns(self) -> bool:
        """Whether word timestamps work: exports made before them have no alignment output."""
        return bool(self.manifest.get("alignment_heads"))

    def cross_attentions(self, encoded: np.ndarray, tokens: list[int], heads: list[tuple[int, int]]):
        """Word timestamps (decoding/words.py): the cross-attention weights of `heads` [heads, tokens, frames]
        and the logits [tokens, vocab] over `tokens`, from the decoder graph's alignment output."""
        exported = [tuple(h) for h in self.manifest.get("alignment_heads") or []]
        if [tuple(h) for h in heads] != exported:
            raise ValueError(f"this export aligns with heads {exported}, not {heads}")
        ids = np.asarray([tokens], dtype=np.int64)
        logits, weights = self.decoder.run(["logits", ALIGNMENT], {"input_ids": ids, "encoder_hidden_states": encoded})
        return weights[0], logits[0]

    def start_decoder(self, encoded: np.ndarray, prompt, sot_index: int) -> "OnnxDecoder":
        """The decoder as a stepper for decoding/search.py, after `prompt` ([batch, length] ids)."""
        return OnnxDecoder(self, encoded, np.asarray(prompt, dtype=np.int64), sot_index)


class OnnxDecoder:
    """The exported decoder graphs with their key/value cache as a stepper (see decoding/search.py).

    Cross-attention caches ([rows, heads, frames, dim] per layer, the bulk of the memory) depend only on
    the clip, so they stay in place: the search's rows live in physical slots of their clip's rows; beams
    reordered within a clip move only the small self-attention caches, and rows that ended keep their slot
    (fed a dummy token) until half the slots are dead, when the batch is compacted in one copy."""

    def __init__(self, model: OnnxModel, encoded: np.ndarray, prompt: np.ndarray, sot_index: int):
        self.model, layers = model, model.config.decoder_layers
        out = model.decoder.run(None, {"input_ids": prompt, "encoder_hidden_states": encoded})
        self.cross = [out[1 + 4 * i + 2 : 1 + 4 * i + 4] for i in range(layers)]
        self.cache = [out[1 + 4 * i : 1 + 4 * i + 2] for i in range(layers)]
        self.logits, self.sot_logits = out[0][:, -1], out[0][:, sot_index]
        self.slot = np.arange(len(prompt))  # the physical row of each of the search's rows
        self.clip = np.arange(len(prompt))  # the clip (prompt row) of each physical row

    def _compact(self, slots: np.ndarray) -> None:
        self.cross = [[a[slots] for a in pair] for pair in self.cross]
        self.cache = [[a[slots] for a in pair] for pair in self.cache]
        self.clip, self.slot = self.clip[slots], np.arange(len(slots))

    def select(self, rows) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == len(self.slot) and (rows == np.arange(len(rows))).all():
            return
        parents = self.slot[rows]
        self.logits, self.sot_logits = self.logits[rows], self.sot_logits[rows]
        free = {}  # per clip, its physical rows not yet taken, in order
        for slot, clip in enumerate(self.clip.tolist()):
            free.setdefault(clip, []).append(slot)
        try:
            targets = np.array([free[clip].pop(0) for clip in self.clip[parents].tolist()], dtype=np.int64)
        except IndexError:  # a clip needs more rows than it has (beams or samples spreading out): copy
            self._compact(parents)
            return
        if not np.array_equal(targets, parents):  # move self-attention caches (small) within their clips
            for pair in self.cache:
                for a in pair:
                    a[targets] = a[parents]
        self.slot = targets
        if 2 * len(targets) <= len(self.clip):  # half the physical rows are dead: compact once
            self._compact(targets)

    def feed(self, tokens) -> None:
        ids = np.zeros((len(self.clip), 1), dtype=np.int64)  # dead rows read a dummy token
        ids[self.slot, 0] = np.asarray(tokens, dtype=np.int64)
        feed = {"input_ids": ids}
        names = self.model.past_names
        for i, (cache, cross) in enumerate(zip(self.cache, self.cross)):
            feed.update(zip(names[4 * i : 4 * i + 4], (*cache, *cross)))
        out = self.model.decoder_with_past.run(None, feed)
        self.logits = out[0][self.slot, -1]
        self.cache = [out[1 + 2 * i : 3 + 2 * i] for i in range(len(self.cache))]
