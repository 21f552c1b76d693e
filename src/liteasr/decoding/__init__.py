"""Decoding: transcription on any runtime, with one options type."""
