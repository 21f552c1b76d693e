"""Audio in: files, folders and JSONL manifests (audio.py), Hugging Face datasets (hf.py)."""
