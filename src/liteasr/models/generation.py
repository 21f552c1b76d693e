"""Whisper's decoder side, for every runtime: languages and tasks, the decoder prompt, language detection
and the greedy loop (PyTorch), and the dense model's own transcripts as teacher-forcing targets for damage
probing and healing. openai/whisper's and faster-whisper's conventions throughout."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from liteasr.errors import UserError

TASKS = ("transcribe", "translate")
WINDOW_SAMPLES = 30 * 16_000  # one encoder window of audio
# Token budget per second of audio. Fast speech is ~6 tokens/s; the cap only stops runaway
# repetition loops (a damaged model can emit 448 tokens for a 3 s clip, 50x the decode time).
TOKENS_PER_SECOND = 12


def token_budget(samples: int, max_length: int, prompt_length: int = 0) -> int:
    """New tokens allowed for clips of at most `samples` samples (every runtime decodes under this cap);
    the decoder's context holds the prompt, up to 4 start tokens and the new tokens."""
    return min(int(TOKENS_PER_SECOND * min(samples, WINDOW_SAMPLES) / 16_000) + 32, max_length - 4 - prompt_length)


def language_code(language: str) -> str:
    """`en`, `English`, `english`, and locales such as `en-US`, `pt_BR` or FLEURS' `it_it` -> Whisper's code
    (`en`, `pt`, `it`); anything else is returned lower-cased (the model then says it does not know it)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    low = language.strip().lower()
    if low in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[low]
    head = low.replace("_", "-").split("-")[0]
    return head if low not in LANGUAGES and head in LANGUAGES else low


def is_language(code: str) -> bool:
    """Whether `code` (as language_code returns it) is one of Whisper's languages."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return code in LANGUAGES


def language_name(code: str) -> str:
    """`en` -> `english`, as OpenAI's API reports languages; an unknown code is returned as is."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES.get(code, code)


def is_multilingual(config) -> bool:
    return bool(getattr(config, "is_multilingual", False))


def language_tokens(config) -> dict[str, int]:
    """Language code -> its token id, for a multilingual generation config (empty for English-only)."""
    if not is_multilingual(config):
        return {}
    return {token[2:-2]: int(i) for token, i in sorted((config.lang_to_id or {}).items(), key=lambda kv: kv[1])}


def check_language_task(config, name: str, language: str | None, task: str | None) -> str | None:
    """The language's code, checked against the model, with the task: English-only models take only `en`
    and `transcribe`. Raises UserError with the reason."""
    if task is not None and task not in TASKS:
        raise UserError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    code = None if language is None else language_code(language)
    if is_multilingual(config):
        if code is not None and code not in language_tokens(config):
            raise UserError(f"{name} does not know language {language!r}")
        return code
    if code not in (None, "en"):
        raise UserError(f"{name} is English-only: language must be en, got {language!r}")
    if task == "translate":
        raise UserError(f"{name} is English-only: it cannot translate")
    return code


def build_prompt(config, languages: list[str | None], task: str = "transcribe",
                 previous: list[int] | tuple = (), timestamps: bool = False) -> torch.Tensor:
    """The decoder prompt, one row per clip, as openai/whisper and faster-whisper build it: [previous text
    tokens (starting with <|startofprev|>)], <|startoftranscript|>, then for multilingual models the clip's
    language and the task, then <|notimestamps|> unless decoding with `timestamps`. `languages`: codes
    (ignored for English-only models)."""
    rows = []
    for code in languages:
        row = [*previous, config.decoder_start_token_id]
        if is_multilingual(config):
            if code is None:
                raise ValueError("a multilingual prompt needs each clip's language")
            row += [language_tokens(config)[code], config.task_to_id[task or "transcribe"]]
        rows.append(row if timestamps else row + [config.no_timestamps_token_id])
    return torch.tensor(rows, dtype=torch.long)


def previous_text_ids(processor, config, max_target_positions: int, prompt: str | None) -> list[int]:
    """<|startofprev|> and the prompt's tokens. Like openai/whisper, only its last tokens: a prompt may
    use at most half the decoder's context."""
    if not prompt:
        return []
    ids = processor.get_prompt_ids(prompt).tolist()
    keep = max_target_positions // 2 - 1
    return [ids[0], *ids[1:][-keep:]]


def language_probs_from_logits(config, logits) -> tuple[list[str], list[float]]:
    """The most likely language of each row of next-token logits after <|startoftranscript|>, and its
    probability among the language tokens (openai/whisper's detect_language; any array type)."""
    tokens = language_tokens(config)
    codes, ids = list(tokens), list(tokens.values())
    scores = torch.as_tensor(np.asarray(logits, dtype=np.float64) if not torch.is_tensor(logits)
                             else logits.detach().double().cpu())[:, ids]
    probs = torch.softmax(scores, -1)
    best = probs.argmax(-1)
    return [codes[b] for b in best.tolist()], [float(probs[i, b]) for i, b in enumerate(best.tolist())]


@torch.inference_mode()
def detect_language(model: nn.Module, encoded: torch.Tensor) -> tuple[list[str], list[float]]:
    """Each window's language and its probability, from one decoder step on <|startoftranscript|>."""
    config = model.generation_config
    start = torch.full((len(encoded), 1), config.decoder_start_token_id, device=encoded.device)
    hidden = model.model.decoder(input_ids=start, encoder_hidden_states=encoded).last_hidden_state[:, -1]
    return language_probs_from_logits(config, vocabulary_logits(model, hidden))


def vocabulary_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Next-token logits [batch, vocab] for decoder states [batch, d_model]: the [vocab, batch] product
    `W @ hidden.T`, viewed transposed. On CPU it measured 1.5-3x faster than `hidden @ W.T` with a
    contiguous transposed copy of W (tiny.en: 1.7 against 2.8 ms for one row, 4.3 against 6.7 for eight;
    benchmarks/RESULTS.md), and needs no copy. A lone row is doubled: as a single column the product
    takes a matrix-vector path that measured 7.8 ms."""
    projection = model.proj_out
    columns = hidden if len(hidden) > 1 else hidden.repeat(2, 1)
    logits = (projection.weight @ columns.T).T[: len(hidden)]
    return logits if projection.bias is None else logits + projection.bias


# Languages Whisper writes without spaces between words: words are split at characters (openai/whisper's
# word timestamps) and scored by characters (CER, as Whisper's paper does).
WITHOUT_SPACES = frozenset({"zh", "ja", "th", "lo", "my", "km", "yue", "bo"})


def alignment_heads(generation_config, config) -> list[tuple[int, int]]:
    """(layer, head) of the decoder's cross-attention heads that follow the audio in time: openai/whisper's
    list for the model (the generation config's `alignment_heads`, kept through conversion and compression),
    else every head of the upper half of the layers, openai/whisper's choice for a model without a list."""
    layers, per_layer = config.decoder_layers, config.decoder_attention_heads
    listed = [(int(layer), int(head)) for layer, head in getattr(generation_config, "alignment_heads", None) or []]
    if listed and all(layer < layers and head < per_layer for layer, head in listed):
        return listed
    # none, or another model's (a generation config copied onto a smaller decoder names heads it lacks)
    return [(layer, head) for layer in range(layers // 2, layers) for head in range(per_layer)]


@torch.inference_mode()
def cross_attention_weights(model: nn.Module, encoded: torch.Tensor, tokens: list[int],
                            heads: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """One clip's teacher-forced pass over `tokens`: the cross-attention weights of `heads` [heads, tokens,
    frames] and the next-token logits [tokens, vocab]. The weights are recomputed from each layer's query
    input (a hook), whatever attention kernel the model runs (SDPA returns none)."""
    layers = model.model.decoder.layers
    queries: dict[int, torch.Tensor] = {}

    def keep(index):
        def hook(module, args, kwargs):
            queries[index] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        return hook

    wanted = sorted({layer for layer, _ in heads})
    hooks = [layers[i].encoder_attn.register_forward_pre_hook(keep(i), with_kwargs=True) for i in wanted]
    ids = torch.tensor([tokens], device=encoded.device)
    try:
        hidden = model.model.decoder(input_ids=ids, encoder_hidden_states=encoded, use_cache=False).last_hidden_state[0]
    finally:
        for hook in hooks:
            hook.remove()
    weights = {}
    for i in wanted:
        attn = layers[i].encoder_attn
        dh = attn.head_dim
        q = attn.q_proj(queries[i][0]).view(len(tokens), -1, dh).transpose(0, 1)  # [heads, tokens, dh]
        k = attn.k_proj(encoded[0]).view(encoded.shape[1], -1, dh).transpose(0, 1)  # [heads, frames, dh]
        weights[i] = torch.softmax((q * dh**-0.5) @ k.transpose(1, 2), dim=-1)
    stacked = torch.stack([weights[layer][head] for layer, head in heads])
    return stacked.float().cpu().numpy(), vocabulary_logits(model, hidden).float().cpu().numpy()


def end_of_text(config) -> int:
    """The end-of-text token of a generation config (it may list several; the first is Whisper's)."""
    eos = config.eos_token_id
    return eos[0] if isinstance(eos, list) else eos


def eos_id(model: nn.Module) -> int:
    return end_of_text(model.generation_config)


@torch.inference_mode()
def greedy_ids(model: nn.Module, encoded: torch.Tensor, prompt: torch.Tensor, budget: int) -> torch.Tensor:
    """Greedy decoding from encoder states and a prompt (build_prompt), as generate() does it with the
    same prompt (same token suppression, `max_new_tokens=budget`) and the same output: the new tokens,
    padded with end-of-text, without the final end-of-text of the longest. Unlike generate, a finished
    clip leaves the batch: neutral on ordinary clips (measured), it keeps one clip looping to its budget
    from costing a batch's step each time. Faster than generate by 1.2-1.3x per clip on CPU
    (research/decoding/decode_loop.py)."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    config = model.generation_config
    eos = eos_id(model)
    suppress = torch.as_tensor(config.suppress_tokens or [], dtype=torch.long, device=encoded.device)
    begin_suppress = torch.as_tensor(config.begin_suppress_tokens or [], dtype=torch.long, device=encoded.device)
    tokens = torch.full((len(encoded), budget), eos, dtype=torch.long, device=encoded.device)
    rows = torch.arange(len(encoded), device=encoded.device)  # clips still decoding, as rows of `tokens`
    inputs = prompt.to(encoded.device)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    length = budget
    for step in range(budget):
        hidden = model.model.decoder(input_ids=inputs, encoder_hidden_states=encoded, cache=cache,
                                     use_cache=True).last_hidden_state[:, -1]
        logits = vocabulary_logits(model, hidden)
        logits[:, suppress] = -torch.inf
        if step == 0:
            logits[:, begin_suppress] = -torch.inf
        token = logits.argmax(-1)
        tokens[rows, step] = token
        going = token != eos
        if not going.all():
            if not going.any():
                length = step
                break
            keep = going.nonzero().view(-1)
            rows, token = rows[keep], token[keep]
            cache.batch_select_indices(keep)
            # From the second step on the decoder reads cross-attention keys and values from the cache;
            # the encoder states only have to be there, so a view of the right batch size, not a copy.
            encoded = encoded[: len(keep)]
        inputs = token[:, None]
    return tokens[:, :length]


class TorchDecoder:
    """The decoder of a PyTorch model as a stepper for decoding/search.py: `logits` (next-token logits of
    each row), `sot_logits` (at <|startoftranscript|>, for the no-speech probability), `select(rows)` keeps
    or repeats rows of the key/value cache, `feed(tokens)` advances every row by one token."""

    @torch.inference_mode()
    def __init__(self, model: nn.Module, encoded: torch.Tensor, prompt: torch.Tensor, sot_index: int):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        self.model, self.encoded = model, encoded
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        hidden = model.model.decoder(input_ids=prompt.to(encoded.device), encoder_hidden_states=encoded,
                                     cache=self.cache, use_cache=True).last_hidden_state
        self.logits = vocabulary_logits(model, hidden[:, -1])
        self.sot_logits = vocabulary_logits(model, hidden[:, sot_index])
        self.source = torch.arange(len(prompt), device=self.logits.device)  # the clip (prompt row) of each row

    def select(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.logits.device)
        if len(rows) == len(self.logits) and bool((rows == torch.arange(len(rows), device=rows.device)).all()):
            return
        self.cache.self_attention_cache.reorder_cache(rows)
        # Cross-attention keys and values depend only on the clip: in beam search the rows of a clip are
        # reordered among themselves at every step, and copying [rows, heads, frames, dim] each time
        # would cost more than the step.
        source = self.source[rows]
        if not torch.equal(source, self.source):
            self.cache.cross_attention_cache.reorder_cache(rows)
            self.source = source
        self.logits, self.sot_logits = self.logits[rows], self.sot_logits[rows]

    @torch.inference_mode()
    def feed(self, tokens: torch.Tensor) -> None:
        # The decoder reads cross-attention keys and values from the cache after the prompt; the encoder
        # states only have to be there with the right batch size: a broadcast view, not a copy.
        encoded = self.encoded[:1].expand(len(tokens), -1, -1)
        hidden = self.model.model.decoder(input_ids=tokens.to(self.encoded.device)[:, None], encoder_hidden_states=encoded,
                                          cache=self.cache, use_cache=True).last_hidden_state[:, -1]
        self.logits = vocabulary_logits(self.model, hidden)


def no_speech_id(tokenizer) -> int | None:
    """<|nospeech|> (<|nocaptions|> in the first Whisper vocabularies), as openai/whisper finds it."""
    for token in ("<|nospeech|>", "<|nocaptions|>"):
        found = tokenizer.convert_tokens_to_ids(token)
        if isinstance(found, int) and found != tokenizer.unk_token_id:
            return found
    return None


def teacher_transcripts(loaded, feats: torch.Tensor, languages: list[str | None] | None = None,
                    samples: int = WINDOW_SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own greedy transcripts as teacher-forcing targets (no labels needed), decoded as
    transcription decodes them (each clip in its given language, else the detected one): ids = prompt +
    transcript + end-of-text, and the mask [batch, length - 1] of positions that predict a transcript
    token."""
    model, config = loaded.model, loaded.generation_config
    eos = eos_id(model)
    encoded = loaded.encode(feats)
    used = list(languages or [None] * len(feats))
    if is_multilingual(config) and not all(used):
        codes, _ = loaded.detect_language(encoded)
        used = [u or c for u, c in zip(used, codes)]
    prompt = build_prompt(config, used)
    text = greedy_ids(model, encoded, prompt, token_budget(samples, config.max_length)).cpu()
    ids = torch.cat([prompt, text, torch.full_like(text[:, :1], eos)], 1)
    return ids.to(feats.device), transcript_mask(ids, eos).to(feats.device)


def transcript_mask(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """True for positions predicting a transcript token (up to and including the first end-of-text)."""
    ended = (ids[:, 1:] == eos).long().cumsum(1)
    # keep the first eos itself (shifted cumsum == 0), drop the padding after it
    return torch.cat([torch.zeros_like(ended[:, :1]), ended[:, :-1]], 1) == 0
