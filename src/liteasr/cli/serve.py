"""`liteasr serve`: an OpenAI-compatible transcription server (POST /v1/audio/transcriptions)."""

from __future__ import annotations

import os
import socket
import sys

from liteasr.cli import common
from liteasr.errors import UserError

API_KEY_ENV = "LITEASR_API_KEY"


def register(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible transcription server with dynamic batching")
    common.model_args(p, files=False)
    common.attention_arg(p)
    common.window_arg(p)
    common.search_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free port (printed)")
    p.add_argument("--max-batch", type=common.positive(int), default=8, help="requests transcribed together (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=50,
                   help="how long the first waiting request waits for batch-mates, while traffic is "
                   "concurrent (default 50; a lone client's requests start at once)")
    p.add_argument("--max-queue", type=common.positive(int), default=64,
                   help="requests allowed to wait; more get 503 with Retry-After (default 64)")
    p.add_argument("--max-upload-mb", type=common.positive(float), default=25, help="upload size limit (default 25)")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                   help=f"require Authorization: Bearer KEY (default: ${API_KEY_ENV}, if set)")
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info")
    p.set_defaults(func=run)


def listen(host: str, port: int) -> socket.socket:
    """Bind before loading the model, so a taken port is a one-line error, not a late crash."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def run(args) -> None:
    if args.max_wait_ms < 0:
        raise UserError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms:g}")
    sock = listen(args.host, args.port)
    import uvicorn

    from liteasr.decoding.transcribe import DecodingOptions
    from liteasr.serve.app import create_app
    from liteasr.serve.engine import Engine

    engine = Engine(args.model, device=common.device(args.device), dtype=common.dtype(args.dtype),
                    attention=args.attention, window=common.window_option(args.window),
                    search=DecodingOptions(**common.search_options(args)))
    engine.warm_up()
    app = create_app(engine, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                     max_upload_bytes=int(args.max_upload_mb * 2**20), api_key=args.api_key)
    host, port = sock.getsockname()[:2]
    if host not in ("127.0.0.1", "::1") and not args.api_key:
        print(f"liteasr serve: warning: listening on {host}, reachable from other machines, without --api-key",
              file=sys.stderr, flush=True)
    print(f"liteasr serve: {args.model} at http://{host}:{port}/v1 (max batch {args.max_batch}, "
          f"wait {args.max_wait_ms:g} ms)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=None))
    try:
        server.run(sockets=[sock])  # SIGTERM / Ctrl-C: stop accepting, finish in-flight requests, exit
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal it drained on; the drain is done
    print("liteasr serve: stopped", flush=True)
