"""`liteasr bench`: encoder latency of MODEL vs BASE, interleaved in one process."""

from __future__ import annotations

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("bench", help="encoder latency of MODEL vs BASE, interleaved in one process")
    common.model_args(p)
    p.add_argument("--vs", required=True, metavar="BASE")
    p.add_argument("--repeats", type=common.positive(int), default=10)
    p.add_argument("--audio-seconds", type=common.positive(float), default=30.0, metavar="S",
                   help="seconds of audio per clip (default 30): each model encodes the window its policy gives "
                        "a clip this long")
    common.window_arg(p)
    p.add_argument("--vs-window", metavar="auto|S", help="BASE's window, as --window (default: its own)")
    p.add_argument("--data", metavar="DATA", help="also time full transcription of these clips")
    p.add_argument("--samples", type=common.positive(int), default=16, help="clips from --data (default 16)")
    p.add_argument("--json", metavar="OUT", type=common.output_file, help="also write the results as JSON")
    common.attention_arg(p)
    p.set_defaults(func=run, batch_size=1)


def run(args) -> None:
    from liteasr.decoding.transcribe import DecodingOptions, check_options
    from liteasr.errors import UserError
    from liteasr.evaluation.bench import encoder_latency
    from liteasr.planning.flops import encoder_cost
    from liteasr.runtime import architecture

    if args.audio_seconds > 30:
        raise UserError(f"--audio-seconds is per window: at most 30, got {args.audio_seconds:g}")
    a, b = common.load(args), common.load(args, args.vs)
    options = [check_options(m, DecodingOptions(window=common.window_option(w)))
               for m, w in ((a, args.window), (b, args.vs_window))]
    samples = round(args.audio_seconds * 16000)
    frames = [o.window.frames(samples) for o in options]
    model, base = architecture(a), architecture(b)
    t_model, t_base = encoder_latency([a, b], batch_size=args.batch_size, repeats=args.repeats, frames=frames)
    cm, cb = encoder_cost(model, frames=frames[0] // 2), encoder_cost(base, frames=frames[1] // 2)
    bound = cb.flops / cm.flops
    speedup = t_base.median_ms / t_model.median_ms
    print(f"encoder ms per window for {args.audio_seconds:g} s of audio (batch {args.batch_size}, {args.repeats} "
          "interleaved runs):")
    print(f"  {args.model} ({frames[0] / 100:g} s window): {t_model.median_ms:.1f} +/- {t_model.spread_ms:.1f}")
    print(f"  {args.vs} ({frames[1] / 100:g} s window): {t_base.median_ms:.1f} +/- {t_base.spread_ms:.1f}")
    print("GFLOPs per window (linear / attention / conv): "
          f"{cm.linear_flops / 1e9:.2f} / {cm.attention_flops / 1e9:.2f} / {cm.conv_flops / 1e9:.2f} vs "
          f"{cb.linear_flops / 1e9:.2f} / {cb.attention_flops / 1e9:.2f} / {cb.conv_flops / 1e9:.2f}")
    print(f"speedup {speedup:.3f}x, FLOP bound {bound:.3f}x: measured = {speedup / bound:.0%} of the bound")
    report = {"encoder_ms": {"model": t_model.median_ms, "base": t_base.median_ms},
              "spread_ms": {"model": t_model.spread_ms, "base": t_base.spread_ms},
              "speedup": speedup, "flop_bound": bound, "fraction_of_bound": speedup / bound,
              "batch_size": args.batch_size, "audio_seconds": args.audio_seconds,
              "window_seconds": {"model": frames[0] / 100, "base": frames[1] / 100}}
    if args.data:
        from liteasr.data.audio import load_audio, read_dataset, sample
        from liteasr.evaluation.bench import transcription_latency

        clips = sample(read_dataset(args.data).clips, args.samples, 0)
        audios = [load_audio(c) for c in clips]
        tm, tb = transcription_latency([a, b], audios, repeats=max(1, args.repeats // 5), options=options)
        print(f"full transcription of {len(clips)} clips: {tm.median_ms / 1e3:.2f} s vs {tb.median_ms / 1e3:.2f} s "
              f"(speedup {tb.median_ms / tm.median_ms:.3f}x)")
        report["transcribe_s"] = {"model": tm.median_ms / 1e3, "base": tb.median_ms / 1e3}
        report["transcribe_speedup"] = tb.median_ms / tm.median_ms
    if args.json:
        common.write_json(args.json, report)
