"""`liteasr export`: a (lite-)Whisper checkpoint as ONNX Runtime graphs (fp32 or int8), a MODEL everywhere."""

from __future__ import annotations

import argparse

from liteasr.cli import common

ERROR_SHARE = 0.5  # runtime.quantize.ERROR_SHARE, stated here so `--help` needs no torch (a test checks they agree)


def register(sub) -> None:
    p = sub.add_parser("export", help="export MODEL to ONNX (encoder, decoder with key/value cache) for ONNX Runtime")
    p.add_argument("model", metavar="MODEL", help="HF dir, CTranslate2 dir, Hub id or short name")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization of the MatMul weights")
    p.add_argument("--calibration", metavar="DATA", nargs="+",
                   help="int8: audio on which each encoder MatMul's int8 error is measured (default: noise)")
    p.add_argument("--probe-clips", type=common.positive(int), default=8, metavar="N",
                   help="int8: windows of --calibration to measure on (default 8)")
    p.add_argument("--int8-error-share", type=float, metavar="F",
                   help="int8: keep in fp32 the fewest encoder MatMuls carrying this share of the measured int8 "
                        f"error (default {ERROR_SHARE}; 0 quantizes all that are not slower in int8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--on-bad-audio", choices=["error", "skip"], default="error")
    p.add_argument("--output", "-o", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.set_defaults(func=run)


def run(args) -> None:
    from liteasr.atomic import check_writable
    from liteasr.errors import UserError
    from liteasr.runtime.export import export

    check_writable(args.output, args.overwrite)
    audios = None
    if args.calibration:
        if not args.quantize:
            raise UserError("--calibration is for --quantize int8 (it measures int8 error)")
        from liteasr.data.audio import load_audio, windows

        clips, _ = common.clips(args, args.calibration, args.probe_clips)
        audios = [w for c in clips for w in windows(load_audio(c))][:args.probe_clips]
    out = export(args.model, args.output, quantize=args.quantize, overwrite=args.overwrite, probe_audio=audios,
                 error_share=args.int8_error_share)
    print(f"wrote {out} (ONNX{' int8' if args.quantize else ' fp32'}; run it as MODEL in transcribe, eval, bench, info)")
