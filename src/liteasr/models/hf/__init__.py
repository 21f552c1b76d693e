"""Hugging Face model code for lite-whisper checkpoints.

These two files are copied verbatim into every checkpoint liteasr writes, so that
`AutoModel.from_pretrained(dir, trust_remote_code=True)` works without liteasr installed.
They must therefore import nothing but torch and transformers.
"""
