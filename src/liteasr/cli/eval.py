"""`liteasr eval`: WER, RTFx and encoder cost of one or more models, ΔWER against the first."""

from __future__ import annotations

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("eval", help="WER, RTFx and encoder cost of one or more models")
    common.model_args(p, model=False)
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--data", nargs="+", required=True, metavar="DATA",
                   help="manifests, folders with transcripts or Hugging Face datasets; SOURCE@LANG states a source's "
                        "language (hf:facebook/multilingual_librispeech:polish:test@pl)")
    p.add_argument("--samples", type=common.positive(int), help="evaluate on N clips per dataset (seeded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT", type=common.output_file, help="also write the results as JSON")
    p.add_argument("--no-latency", action="store_true", help="skip the encoder latency measurement")
    common.attention_arg(p)
    common.language_args(p)
    common.window_arg(p)
    common.search_args(p, greedy=True)
    common.column_args(p)
    p.set_defaults(func=run, distributed=True)


def run(args) -> None:
    from liteasr.data.audio import read_dataset
    from liteasr.decoding.transcribe import language_options
    from liteasr.evaluation.report import evaluate_models, print_table

    sets = []
    for source in args.data:
        ds = read_dataset(source, *common.columns(args))
        ds.clips, _ = common.clips(args, [ds], args.samples, with_text=True)
        sets.append(ds)
    results = evaluate_models(args.models, sets, device=common.device(args.device), dtype=common.dtype(args.dtype),
                              batch_size=args.batch_size, latency=not args.no_latency, attention=args.attention,
                              options=language_options(args.language, args.task,
                                                       window=common.window_option(args.window),
                                                       **common.search_options(args)))
    print_table(results)
    if args.json:
        common.write_json(args.json, results)
