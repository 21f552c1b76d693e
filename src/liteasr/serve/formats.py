"""Response bodies in the shapes OpenAI's /v1/audio/transcriptions returns."""

from __future__ import annotations

from liteasr.decoding import subtitles
from liteasr.errors import UserError
from liteasr.serve.engine import Result

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
TIMESTAMPED = ("srt", "vtt", "verbose_json")
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain",
               "srt": "application/x-subrip", "vtt": "text/vtt"}


# OpenAI's client sends `timestamp_granularities[]`; plain forms may write the name without brackets
GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")


def check_granularities(granularities: list[str], response_format: str) -> tuple[bool, bool]:
    """OpenAI's `timestamp_granularities` (verbose_json only): whether the answer has `segments` (asked for,
    or nothing asked) and `words`."""
    for value in granularities:
        if value not in ("segment", "word"):
            raise UserError(f"timestamp_granularities must be segment or word, got {value!r}")
    if granularities and response_format != "verbose_json":
        raise UserError("timestamp_granularities needs response_format verbose_json")
    return not granularities or "segment" in granularities, "word" in granularities


def verbose_json(result: Result, task: str, segments: bool = True, words: bool = False) -> dict:
    body = {"task": task, "language": result.language, "duration": result.duration, "text": result.text}
    if words:  # OpenAI's words: no leading space, no probability
        body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end}
                         for s in result.segments for w in s.words or []]
    if segments:
        # Each segment's scores are its 30 s window's, as the search found them (openai/whisper's convention).
        body["segments"] = [{"id": i, "seek": round(s.start * 100), "start": s.start, "end": s.end, "text": s.text,
                             "tokens": s.tokens, "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                             "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                            for i, s in enumerate(result.segments)]
    return body


def render(result: Result, response_format: str, task: str, granularities: tuple[bool, bool] = (True, False)
           ) -> str | dict:
    """A dict for the JSON formats, text for the others; `granularities`: verbose_json's segments and words
    (check_granularities)."""
    if response_format == "json":
        return {"text": result.text}
    if response_format == "verbose_json":
        return verbose_json(result, task, *granularities)
    if response_format in subtitles.SUBTITLES:
        return subtitles.SUBTITLES[response_format](result.segments)
    return result.text + "\n"
