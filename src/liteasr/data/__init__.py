"""Data sources beyond files and manifests (Hugging Face datasets); audio.py dispatches to them."""
