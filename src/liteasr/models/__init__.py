"""The Whisper adapter: everything model-specific (loading, conversion, prompt and decoding loop, surgery)."""
