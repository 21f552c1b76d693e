"""`liteasr serve`: an OpenAI-compatible transcription server with dynamic batching.

engine.py is the only module that touches a model; batcher.py groups concurrent requests into
batches; formats.py renders results as json / text / srt / vtt / verbose_json; app.py is the
FastAPI application (routes, limits, errors).
"""
