"""Subtitles from timestamped segments (decoding.transcribe.Segment): SubRip (.srt) and WebVTT (.vtt), as the
server answers `response_format=srt|vtt` and `liteasr transcribe --subtitles` writes them."""

from __future__ import annotations


def clock(seconds: float, decimal: str) -> str:
    """HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def srt(segments: list) -> str:
    return "\n".join(f"{i}\n{clock(s.start, ',')} --> {clock(s.end, ',')}\n{s.text}\n" for i, s in enumerate(segments, 1))


def vtt(segments: list) -> str:
    return "WEBVTT\n\n" + "\n".join(f"{clock(s.start, '.')} --> {clock(s.end, '.')}\n{s.text}\n" for s in segments)


SUBTITLES = {"srt": srt, "vtt": vtt}
