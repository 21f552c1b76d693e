"""Token search over any runtime's decoder: greedy, beam search and sampling, and the temperature fallback
with openai/whisper's guards, as faster-whisper runs them by default.

A runtime either opens a decoder, `start_decoder(encoded, prompt, sot_index)`: a Stepper whose `logits` are the next-token
logits of every row, `sot_logits` the logits at <|startoftranscript|> (for the no-speech probability), whose
`select(rows)` keeps (or repeats) the given rows of its cache and logits, and whose `feed(tokens)` advances
every row by one token;
or, like CTranslate2, runs its own search: `search(encoded, prompt, budget, beam_size, best_of, temperature)`.
The search and every decision about it live here, once for all runtimes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Hypothesis:
    """One clip's decoded tokens (after the prompt, without end-of-text) and how sure the model was."""

    tokens: list[int]
    sum_logprob: float  # log-probability of the tokens and of the end-of-text (when reached)
    no_speech_prob: float  # probability of <|nospeech|> at <|startoftranscript|>
    temperature: float = 0.0
    compression_ratio: float = 0.0  # filled in from the text (compression_ratio)
    end_logprob: float | None = None  # log-probability of its end-of-text; None when the budget ran out first

    @property
    def avg_logprob(self) -> float:
        """As openai/whisper: per token, end-of-text included."""
        return self.sum_logprob / (len(self.tokens) + 1)


def compression_ratio(text: str) -> float:
    """Bytes of the text over bytes of its zlib compression: a looping transcript compresses well (> 2.4)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _filtered(logits: torch.Tensor, tokens: "Tokens", histories: list[list[int]]) -> torch.Tensor:
    """Logits after openai/whisper's filters: SuppressTokens, SuppressBlank (first step) and, when decoding
    with timestamps, ApplyTimestampRules. `histories`: each row's tokens so far (after the prompt)."""
    logits = logits.float().clone()
    logits[:, list(tokens.suppress)] = -torch.inf
    first = not histories[0]  # rows of one search share their step
    if first:
        logits[:, list(tokens.begin_suppress)] = -torch.inf
    if tokens.timestamp_begin is None:
        return logits
    begin = tokens.timestamp_begin
    logits[:, tokens.no_timestamps] = -torch.inf
    for k, seq in enumerate(histories):
        last = len(seq) >= 1 and seq[-1] >= begin
        penultimate = len(seq) < 2 or seq[-2] >= begin
        if last:
            if penultimate:  # a pair just closed: text next
                logits[k, begin:] = -torch.inf
            else:  # a segment just ended: its closing timestamp (or the end) next
                logits[k, : tokens.eot] = -torch.inf
        stamps = [t for t in seq if t >= begin]
        if stamps:  # timestamps do not go back
            floor = stamps[-1] if last and not penultimate else stamps[-1] + 1
            logits[k, begin:floor] = -torch.inf
    if first:  # a timestamp first, within the first second
        logits[:, :begin] = -torch.inf
        logits[:, begin + tokens.max_initial_timestamp + 1 :] = -torch.inf
    logprobs = logits.log_softmax(-1)
    stamp = logprobs[:, begin:].logsumexp(-1)
    text = logprobs[:, :begin].max(-1).values
    logits[stamp > text, :begin] = -torch.inf  # timestamps together more likely than any text token
    return logits


def _no_speech(sot_logits, no_speech_id: int | None) -> torch.Tensor:
    sot = as_tensor(sot_logits).float()
    if no_speech_id is None:
        return torch.zeros(len(sot))
    return sot.softmax(-1)[:, no_speech_id]


@dataclass(frozen=True)
class Tokens:
    """Token ids the search needs (from the generation config and the tokenizer)."""

    eot: int
    suppress: tuple[int, ...]
    begin_suppress: tuple[int, ...]
    no_speech: int | None
    timestamp_begin: int | None = None  # set: decode with timestamps (<|0.00|>, the first of them)
    no_timestamps: int | None = None
    max_initial_timestamp: int = 50  # in 0.02 s steps: the first timestamp is at most 1 s


def sample(stepper, tokens: Tokens, budget: int, candidates: int, temperature: float,
           generators: list[torch.Generator] | None = None) -> list[list[Hypothesis]]:
    """Greedy (temperature 0) or sampled decoding, `candidates` independent rows per clip (the stepper's
    rows are already repeated that many times, clip by clip). A row that reaches end-of-text leaves the
    batch, so one looping clip does not make the others pay for its steps. Sampling draws from each clip's
    own generator (`generators`, one per clip), so a clip's text does not depend on its batch-mates."""
    n = len(as_tensor(stepper.logits))
    no_speech = _no_speech(stepper.sot_logits, tokens.no_speech)
    out: list[list[int]] = [[] for _ in range(n)]
    sums = torch.zeros(n, dtype=torch.float64)
    ends: list[float | None] = [None] * n
    rows = torch.arange(n)  # original row of each live row
    logits = as_tensor(stepper.logits)
    for step in range(budget):
        scores = _filtered(logits, tokens, [out[r] for r in rows.tolist()])
        logprobs = scores.log_softmax(-1)
        if temperature > 0:
            probs = (scores / temperature).softmax(-1)
            token = torch.cat([torch.multinomial(probs[k], 1, generator=generators[r // candidates])
                               for k, r in enumerate(rows.tolist())])
        else:
            token = scores.argmax(-1)
        chosen = logprobs.gather(1, token[:, None]).view(-1).double()
        sums[rows] += chosen
        going = token != tokens.eot
        for r, t, g, lp in zip(rows.tolist(), token.tolist(), going.tolist(), chosen.tolist()):
            if g:
                out[r].append(t)
            else:
                ends[r] = lp
        keep = going.nonzero().view(-1)
        if len(keep) == 0 or step == budget - 1:
            break
        rows, token = rows[keep], token[keep]
        stepper.select(keep)
        stepper.feed(token)
        logits = as_tensor(stepper.logits)
    hyps = [Hypothesis(out[r], float(sums[r]), float(no_speech[r]), temperature, end_logprob=ends[r])
            for r in range(n)]
    return [hyps[c * candidates : (c + 1) * candidates] for c in range(n // candidates)]


def beam_search(stepper, tokens: Tokens, budget: int, beam_size: int) -> list[list[Hypothesis]]:
    """openai/whisper's beam search (patience 1): each clip keeps `beam_size` live beams, each step's
    candidates are every beam's `beam_size + 1` best next tokens, and a clip is done when `beam_size`
    beams have ended (or the budget is spent: then its live beams count as ended). The stepper starts with
    one row per clip."""
    clips = len(as_tensor(stepper.logits))
    no_speech = _no_speech(stepper.sot_logits, tokens.no_speech).tolist()
    # live beams, row by row of the stepper: (clip, tokens, sum of log-probabilities)
    live: list[tuple[int, list[int], float]] = [(c, [], 0.0) for c in range(clips)]
    # per clip, ended beams: (tokens, sum of log-probabilities, log-probability of the end-of-text)
    finished: list[list[tuple[list[int], float, float | None]]] = [[] for _ in range(clips)]
    logits = as_tensor(stepper.logits)
    for step in range(budget):
        logprobs = _filtered(logits, tokens, [seq for _, seq, _ in live]).log_softmax(-1)
        top, index = logprobs.topk(beam_size + 1, dim=-1)
        by_clip: dict[int, list[tuple[float, int, int, float]]] = {}
        for row, (clip, seq, total) in enumerate(live):
            for lp, tok in zip(top[row].tolist(), index[row].tolist()):
                by_clip.setdefault(clip, []).append((total + lp, row, tok, lp))
        new_live, parents, next_tokens = [], [], []
        for clip, candidates in by_clip.items():
            candidates.sort(key=lambda c: -c[0])
            kept, seen = 0, set()
            for total, row, tok, lp in candidates:
                seq = live[row][1] + [tok]
                if tuple(seq) in seen:
                    continue
                seen.add(tuple(seq))
                if tok == tokens.eot:
                    if len(finished[clip]) < beam_size:
                        finished[clip].append((live[row][1], total, lp))
                else:
                    new_live.append((clip, seq, total))
                    parents.append(row)
                    next_tokens.append(tok)
                    kept += 1
                    if kept == beam_size:
                        break
        done = {c for c in range(clips) if len(finished[c]) >= beam_size}
        keep = [i for i, (clip, _, _) in enumerate(new_live) if clip not in done]
        if not keep or step == budget - 1:
            for i in keep:  # out of budget: live beams count as ended
                clip, seq, total = new_live[i]
                finished[clip].append((seq, total, None))
            break
        live = [new_live[i] for i in keep]
        stepper.select(torch.tensor([parents[i] for i in keep]))
        stepper.feed(torch.tensor([next_tokens[i] for i in keep]))
        logits = as_tensor(stepper.logits)
    return [[Hypothesis(seq, total, no_speech[c], end_logprob=end) for seq, total, end in finished[c]]
            or [Hypothesis([], 0.0, no_speech[c])]
            for c in range(clips)]


def best(hypotheses: list[Hypothesis]) -> Hypothesis:
    """openai/whisper's ranking without a length penalty: the highest log-probability per token."""
    return max(hypotheses, key=lambda h: h.sum_logprob / max(1, len(h.tokens)))
