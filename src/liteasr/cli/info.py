"""`liteasr info`: ranks, parameters and FLOPs of a model."""

from __future__ import annotations

from liteasr.cli import common


def register(sub) -> None:
    p = sub.add_parser("info", help="ranks, parameters and FLOPs of a model")
    common.model_args(p)
    p.set_defaults(func=run)


def run(args) -> None:
    from liteasr.models import whisper
    from liteasr.planning.flops import encoder_cost
    from liteasr.runtime import architecture

    loaded = common.load(args)
    model = architecture(loaded)
    before, after = encoder_cost(model, dense=True), encoder_cost(model)
    print(f"model: {loaded.path}" + (f" (runs in {loaded.runtime})" if hasattr(loaded, "runtime") else ""))
    print("layer  q_proj  k_proj  v_proj  out_proj  fc1    fc2")
    for i, ranks in enumerate(whisper.low_rank_config(model)):
        cells = [str(ranks.get(n, "dense")) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")]
        print(f"{i:<6} " + " ".join(f"{c:<7}" for c in cells))
    print(f"{'':28}{'dense':>14}{'this model':>14}{'kept':>8}")
    for label, a, b in (("encoder params", before.params, after.params),
                        ("encoder linear params", before.linear_params, after.linear_params),
                        ("GFLOPs/30 s: linear", before.linear_flops / 1e9, after.linear_flops / 1e9),
                        ("GFLOPs/30 s: attention", before.attention_flops / 1e9, after.attention_flops / 1e9),
                        ("GFLOPs/30 s: conv", before.conv_flops / 1e9, after.conv_flops / 1e9),
                        ("GFLOPs/30 s: total", before.gflops, after.gflops)):
        fmt = (lambda x: f"{x:,}") if isinstance(a, int) else (lambda x: f"{x:.2f}")
        print(f"{label:<28}{fmt(a):>14}{fmt(b):>14}{b / a:>8.1%}")
