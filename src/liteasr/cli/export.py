"""`liteasr export`: a (lite-)Whisper checkpoint as ONNX Runtime graphs (fp32 or int8), a MODEL everywhere."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("export", help="export MODEL to ONNX (encoder, decoder with key/value cache) for ONNX Runtime")
    p.add_argument("model", metavar="MODEL", help="HF dir, CTranslate2 dir, Hub id or short name")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization of the MatMul weights")
    p.add_argument("--output", "-o", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=run)


def run(args) -> None:
    from ..atomic import check_writable
    from ..runtime.export import export

    check_writable(args.output, args.overwrite)
    out = export(args.model, args.output, quantize=args.quantize, overwrite=args.overwrite)
    print(f"wrote {out} (ONNX{' int8' if args.quantize else ' fp32'}; run it as MODEL in transcribe, eval, bench, info)")
