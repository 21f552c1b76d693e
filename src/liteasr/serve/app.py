"""The FastAPI application: OpenAI's /v1/audio/transcriptions (and /translations), /v1/models, /health."""

from __future__ import annotations

import asyncio
import secrets
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from liteasr.data.audio import decode_audio
from liteasr.errors import UserError
from liteasr.serve import formats
from liteasr.serve.batcher import Batcher, QueueFull
from liteasr.serve.engine import Engine, Options

RETRY_AFTER_S = 1


def error_body(status: int, message: str, code: str | None = None) -> dict:
    """OpenAI's error shape."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class UploadLimit:
    """Refuse request bodies over `max_bytes` (413): at once when Content-Length says so, else
    while the body streams in, before it is all read."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse(error_body(413, self._message()), status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"upload larger than the server's limit of {self.max_bytes / 2**20:g} MB"


def create_app(engine: Engine, max_batch: int = 8, max_wait_ms: float = 50, max_queue: int = 64,
               max_upload_bytes: int = 25 * 2**20, api_key: str | None = None) -> FastAPI:
    batcher = Batcher(engine.transcribe, max_batch, max_wait_ms, max_queue)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield  # uvicorn drains in-flight requests before this returns
        await batcher.stop()

    app = FastAPI(title="liteasr", lifespan=lifespan)
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    bearer = HTTPBearer(auto_error=False)

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        if api_key is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        return JSONResponse(error_body(400, str(exc.errors()[0].get("msg", "invalid request"))), 400)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": engine.name, "pending": batcher.pending, "queued": batcher.queue.qsize()}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models():
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "created": int(started),
                                            "owned_by": "liteasr"}]}

    async def handle(request: Request, task: str):
        response_format, granularity, options, audio = await read_request(request, task)
        try:
            result = await batcher.submit(audio, options)
        except QueueFull:
            raise HTTPException(503, "server busy: too many requests waiting; retry later",
                                headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except Exception as exc:  # noqa: BLE001  (a model failure on this request alone)
            raise HTTPException(500, f"transcription failed: {type(exc).__name__}: {exc}") from None
        body = formats.render(result, response_format, task, granularity)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=formats.MEDIA_TYPES[response_format])

    async def read_request(request: Request, task: str):
        """The form's options, checked (verbose_json's granularities: segments, words), and its audio decoded
        (in a thread): any mistake is a 400."""
        try:
            form = await request.form(max_files=2, max_fields=32)  # 2: a file in a text field gets its own message
        except HTTPException as exc:
            if exc.status_code == 413:
                raise
            raise HTTPException(400, f"cannot parse the multipart form: {exc.detail}") from None

        def text(name: str, default: str | None = None) -> str | None:
            value = form.get(name)
            if isinstance(value, UploadFile):
                raise UserError(f"`{name}` must be a text field, not a file")
            return value or default

        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise UserError("a multipart `file` with the audio is required")
            response_format = text("response_format", "json")
            if response_format not in formats.FORMATS:
                raise UserError(f"response_format must be one of {', '.join(formats.FORMATS)}, "
                                f"got {response_format!r}")
            granularities = [g for name in formats.GRANULARITY_FIELDS for g in form.getlist(name)]
            if any(isinstance(g, UploadFile) for g in granularities):
                raise UserError("`timestamp_granularities[]` must be a text field, not a file")
            granularity = formats.check_granularities(granularities, response_format)
            temperature = text("temperature")
            if temperature is not None:  # OpenAI's API: one temperature, no fallback
                try:
                    temperature = float(temperature)
                    if not 0 <= temperature <= 1:
                        raise ValueError
                except ValueError:
                    raise UserError(f"temperature must be a number from 0 to 1, got {temperature!r}") from None
            options = Options(language=text("language"), task=task, prompt=text("prompt"),
                              timestamps=response_format in formats.TIMESTAMPED, temperature=temperature,
                              words=granularity[1])
            engine.check(options)
            # the name is only used in messages; it never names a path on the server
            audio = await asyncio.to_thread(decode_audio, upload.file, "uploaded file")
        except UserError as exc:
            raise HTTPException(400, str(exc)) from None
        finally:
            await form.close()  # removes the upload's temp file, if it was large enough to have one
        return response_format, granularity, options, audio

    @app.post("/v1/audio/transcriptions", dependencies=[Depends(authorized)])
    async def transcriptions(request: Request):
        return await handle(request, "transcribe")

    @app.post("/v1/audio/translations", dependencies=[Depends(authorized)])
    async def translations(request: Request):
        return await handle(request, "translate")

    started = time.time()
    return app
