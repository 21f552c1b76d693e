"""`ctranslate2:SPEC[:COMPUTE_TYPE]`: a base Whisper run by CTranslate2, the engine of faster-whisper,
as the reference a liteasr model is compared against (same features, prompt and token budget:
decoding/transcribe.py builds them, as for every runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liteasr.errors import UserError
from liteasr.models import whisper
from liteasr.models.ct2 import is_ct2_dir
from liteasr.models.sources import offline_copy

PREFIX = "ctranslate2:"
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")


def parse(spec: str) -> tuple[Path, str]:
    """`ctranslate2:SPEC[:COMPUTE_TYPE]` -> (CTranslate2 directory, compute type)."""
    rest = spec[len(PREFIX):]
    name, _, compute = rest.partition(":")
    compute = compute or "default"
    if compute not in COMPUTE_TYPES:
        raise UserError(f"{spec}: unknown compute type {compute!r} (one of {', '.join(COMPUTE_TYPES)})")
    path = Path(name)
    if not (path.is_dir() and is_ct2_dir(path)):
        copy = offline_copy(name)
        if copy is None:
            raise UserError(f"{spec}: {name!r} is neither a CTranslate2 model directory nor a short name with a "
                            "CTranslate2 copy here (tiny.en, base)")
        path = copy
    return path, compute


class CT2Model:
    runtime = "ctranslate2"

    def __init__(self, spec: str, device: str = "cpu", threads: int | None = None):
        import ctranslate2
        import torch

        path, compute = parse(spec)
        self.path, self.name = path, spec
        threads = threads or torch.get_num_threads()  # the same CPU threads as the other runtimes
        try:
            self.model = ctranslate2.models.Whisper(str(path), device="cuda" if device.startswith("cuda") else "cpu",
                                                    compute_type=compute, intra_threads=threads)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{spec}: CTranslate2 cannot load it ({str(exc).splitlines()[0]})") from None
        # Tokenizer, feature extractor, generation config and structure from its Hugging Face conversion.
        hf = whisper.load(str(path))
        self.processor, self.generation_config = hf.processor, hf.model.generation_config
        self.architecture, self.config = hf.model, hf.model.config

    def features(self, audios: list[np.ndarray]) -> np.ndarray:
        return whisper.features(self.processor, audios).numpy()

    def encode(self, features):
        import ctranslate2

        features = features.numpy() if hasattr(features, "numpy") else features
        return self.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features, np.float32)),
                                 to_cpu=True)

    def detect_language(self, encoded) -> tuple[list[str], list[float]]:
        found = self.model.detect_language(encoded)  # per window: (token, probability), most likely first
        return [langs[0][0][2:-2] for langs in found], [float(langs[0][1]) for langs in found]

    def search(self, encoded, prompt, budget: int, beam_size: int, best_of: int, temperature: float, seed: int = 0
               ) -> list[list[tuple[list[int], float, float]]]:
        """CTranslate2's own search, as faster-whisper calls it: beam search at temperature 0, else `best_of`
        samples. Per clip, hypotheses best first: (tokens, sum of log-probabilities, no-speech probability)."""
        import ctranslate2

        prompt = [list(map(int, row)) for row in (prompt.tolist() if hasattr(prompt, "tolist") else prompt)]
        if isinstance(encoded, np.ndarray):  # rows taken out of a batch for the temperature fallback
            encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded, np.float32))
        config = self.generation_config
        if temperature > 0:
            ctranslate2.set_random_seed(seed)
            kwargs = dict(beam_size=1, num_hypotheses=best_of, sampling_topk=0, sampling_temperature=temperature)
        else:
            kwargs = dict(beam_size=beam_size)
        results = self.model.generate(encoded, prompt, max_length=len(prompt[0]) + budget, return_scores=True,
                                      return_no_speech_prob=True, length_penalty=1, suppress_blank=True,
                                      suppress_tokens=list(config.suppress_tokens or []), **kwargs)
        # scores are normalized by length (length_penalty 1); faster-whisper multiplies the length back
        return [[(ids, score * len(ids), r.no_speech_prob) for ids, score in zip(r.sequences_ids, r.scores)]
                for r in results]

    def align(self, encoded, start: list[int], text: list[int], frames: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """CTranslate2's own alignment for word timestamps, as faster-whisper calls it: the (token, frame)
        path over `text` + end-of-text and each text token's probability (decoding/words.py)."""
        import ctranslate2

        if isinstance(encoded, np.ndarray):
            encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded, np.float32))
        [result] = self.model.align(encoded, list(start), [list(text)], frames, median_filter_width=7)
        path = np.asarray(result.alignments, dtype=np.int64).reshape(-1, 2)
        return path[:, 0], path[:, 1], list(result.text_token_probs)
