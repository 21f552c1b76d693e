"""Greedy, batched transcription. Clips over 30 s are decoded long-form (sequentially, window by
window, with timestamps to find the cut points) rather than cut off."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from . import whisper
from .audio import SAMPLE_RATE

WINDOW = whisper.WINDOW_SECONDS * SAMPLE_RATE
# Token budget per second of audio. Fast speech is ~6 tokens/s; the cap only stops runaway
# repetition loops (a damaged model can emit 448 tokens for a 3 s clip, 50x the decode time).
TOKENS_PER_SECOND = 12


@dataclass
class Transcription:
    texts: list[str]
    seconds: float  # feature extraction + generate + decode, warm-up excluded


def _generate(model, **inputs) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(**inputs, do_sample=False, num_beams=1)


def token_budget(samples: int, max_length: int) -> int:
    """New tokens allowed for clips of at most `samples` samples (every runtime decodes under this cap)."""
    return min(int(TOKENS_PER_SECOND * samples / SAMPLE_RATE) + 32, max_length - 4)


def greedy_ids(loaded: whisper.LoadedModel, feats: torch.Tensor, samples: int) -> torch.Tensor:
    """Greedy token ids for clips of at most `samples` samples: the transcript without the prompt,
    padded with end-of-text after the shorter ones."""
    return _generate(loaded.model, input_features=feats,
                     max_new_tokens=token_budget(samples, loaded.model.generation_config.max_length))


def own_transcripts(loaded: whisper.LoadedModel, feats: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own greedy transcripts as teacher-forcing targets (no labels needed): ids = prompt +
    transcript + end-of-text (generate drops the prompt, and the final end-of-text of the longest
    transcript), and the mask [batch, length - 1] of positions that predict a transcript token."""
    eos = loaded.model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    text = greedy_ids(loaded, feats, samples).cpu()
    ids = torch.cat([whisper.prompt_ids(loaded.model, feats), text, torch.full_like(text[:, :1], eos)], 1)
    return ids.to(feats.device), transcript_mask(ids, eos).to(feats.device)


def transcript_mask(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """True for positions predicting a transcript token (up to and including the first end-of-text)."""
    ended = (ids[:, 1:] == eos).long().cumsum(1)
    # keep the first eos itself (shifted cumsum == 0), drop the padding after it
    return torch.cat([torch.zeros_like(ended[:, :1]), ended[:, :-1]], 1) == 0


def _short_batch(loaded: whisper.LoadedModel, audios: list[np.ndarray]) -> list[str]:
    if not isinstance(loaded, whisper.LoadedModel):  # ONNX Runtime or CTranslate2 (runtime/): decodes itself
        return loaded.short_batch(audios)
    param = next(loaded.model.parameters())
    feats = whisper.features(loaded.processor, audios, device=param.device, dtype=param.dtype)
    ids = greedy_ids(loaded, feats, max(len(a) for a in audios))
    return loaded.processor.batch_decode(ids, skip_special_tokens=True)


def _long_one(loaded: whisper.LoadedModel, audio: np.ndarray) -> str:
    if not isinstance(loaded, whisper.LoadedModel):
        return loaded.long_one(audio)
    param = next(loaded.model.parameters())
    inputs = loaded.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, truncation=False, padding="longest",
                                                return_attention_mask=True, return_tensors="pt")
    ids = _generate(loaded.model, input_features=inputs.input_features.to(param.device, param.dtype),
                    attention_mask=inputs.attention_mask.to(param.device), return_timestamps=True)
    return loaded.processor.batch_decode(ids, skip_special_tokens=True)[0]


def transcribe(loaded: whisper.LoadedModel, audios: list[np.ndarray], batch_size: int = 8,
               progress: bool = True, warmup: bool = True) -> Transcription:
    short = [i for i, a in enumerate(audios) if len(a) <= WINDOW]
    long = [i for i, a in enumerate(audios) if len(a) > WINDOW]
    if warmup and audios:  # first calls pay for allocation and kernel selection
        first = audios[short[0]] if short else audios[long[0]][:WINDOW]
        _short_batch(loaded, [first] * min(batch_size, max(1, len(short))))
    texts: list[str] = [""] * len(audios)
    elapsed = 0.0
    with tqdm(total=len(audios), desc="transcribing", unit="clip", disable=not progress) as bar:
        for start in range(0, len(short), batch_size):
            idx = short[start : start + batch_size]
            t0 = time.perf_counter()
            out = _short_batch(loaded, [audios[i] for i in idx])
            elapsed += time.perf_counter() - t0
            for i, text in zip(idx, out):
                texts[i] = text.strip()
            bar.update(len(idx))
        for i in long:
            t0 = time.perf_counter()
            texts[i] = _long_one(loaded, audios[i]).strip()
            elapsed += time.perf_counter() - t0
            bar.update(1)
    return Transcription(texts, elapsed)
