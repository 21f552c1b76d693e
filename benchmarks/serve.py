"""`liteasr serve` under load: 1, 8 and 32 concurrent clients, dense vs compressed, batching on vs off.

    python benchmarks/serve.py [COMPRESSED] [--base tiny.en] [--requests 24] [--rounds 1]
        [--response-format json] [--json benchmarks/serve.json] [--markdown benchmarks/RESULTS.md]

COMPRESSED: a compression of --base (default: tiny.en at 0.7 with every other default, made under runs/bench
by benchmarks/_common.default_compression unless there already). The servers decode with `liteasr serve`'s
defaults (faster-whisper's: beam 5, temperature fallback).

Four servers run at once on loopback (model x batching); idle ones cost nothing, and every load
level runs all four one after another (interleaved), so they see the same machine. Each load run
sends the same `--requests` development clips (librispeech_other, seeded) through N clients, each
a bounded loop taking the next clip until none is left. Throughput = audio seconds / wall seconds.
The encoder's speedup and its share of transcription time are measured in this process first.
`--response-format verbose_json` (or srt, vtt) asks for timestamped answers, which the server decodes with
timestamps (transcribe_segments' batches) instead of `transcribe`'s.
"""

import argparse
import os
import platform
import sys
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import openai
from _common import default_compression, emit, speech_or_exit, write_json

from liteasr import runtime
from liteasr.data.audio import SAMPLE_RATE, load_audio, read_dataset, sample
from liteasr.evaluation.bench import encoder_latency, transcription_latency
from liteasr.models import whisper
from liteasr.serve.process import ServerProcess

CLIENTS = (1, 8, 32)


def encoder_share(base: str, compressed: str, audios, repeats: int) -> tuple[float, float]:
    """(encoder speedup at batch 8, the encoder's share of dense transcription time at batch 8). Each model
    encodes the window its server gives the median clip (30 s, or its own recorded short-window policy)."""
    dense, lite = runtime.load(base), runtime.load(compressed)  # any MODEL: checkpoints or `liteasr export` dirs
    median = int(statistics.median(len(a) for a in audios))
    frames = [getattr(m, "window", whisper.PADDED).frames(median) for m in (dense, lite)]
    t_dense, t_lite = encoder_latency([dense, lite], batch_size=8, repeats=repeats, warmup=1, frames=frames)
    (t_total,) = transcription_latency([dense], audios[:8], batch_size=8, repeats=1)
    share = t_dense.median_ms * 8 / t_total.median_ms  # encoder ms per window x 8 windows / whole batch
    return t_dense.median_ms / t_lite.median_ms, share


def load(url: str, paths, clients: int, response_format: str = "json") -> dict:
    """Every clip once, through `clients` concurrent clients; latencies and failures per request."""
    todo = iter(list(enumerate(paths)))
    latencies, failures = [], []

    def client_loop():
        client = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0, timeout=600)
        for _, path in todo:  # shared iterator: a bounded loop over the remaining clips
            t0 = time.perf_counter()
            try:
                with open(path, "rb") as f:
                    client.audio.transcriptions.create(model="whisper-1", file=f, response_format=response_format)
                latencies.append(time.perf_counter() - t0)
            except openai.APIError as exc:
                failures.append(exc)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client_loop) for _ in range(clients)]:
            f.result()
    return {"wall": time.perf_counter() - t0, "latencies": sorted(latencies), "failed": len(failures)}


def percentile(values, q):
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("compressed", nargs="?", help="default: the default 0.7 compression of tiny.en (runs/bench)")
    p.add_argument("--base", default="tiny.en")
    p.add_argument("--requests", type=int, default=24, help="clips sent per load run (default 24)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repeats of every run (default 1)")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=50)
    p.add_argument("--encoder-repeats", type=int, default=3, help="interleaved encoder timings (default 3)")
    p.add_argument("--response-format", default="json", choices=["json", "verbose_json", "srt", "vtt"],
                   help="what the clients ask for (default json; the timestamped formats decode with timestamps)")
    p.add_argument("--json", default="benchmarks/serve.json")
    p.add_argument("--markdown")
    args = p.parse_args()

    speech = speech_or_exit()
    args.compressed = args.compressed or str(default_compression())
    clips = sample(read_dataset(speech / "librispeech_other").clips, args.requests, seed=0)
    paths = [c.path for c in clips]
    audios = [load_audio(p) for p in paths]
    audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    configs = [(name, model, batch) for name, model in (("dense", args.base), ("compressed", args.compressed))
               for batch in (args.max_batch, 1)]
    servers = {c: ServerProcess(c[1], "--max-batch", c[2], "--max-wait-ms", args.max_wait_ms, "--max-queue", 256)
               for c in configs}
    try:
        for server in servers.values():
            server.url  # wait until all four listen
        # measured while the servers sit idle
        speedup, share = encoder_share(args.base, args.compressed, audios, args.encoder_repeats)
        expected = 1 / ((1 - share) + share / speedup)  # Amdahl: only the encoder got faster
        for server in servers.values():  # one warm request each (first calls allocate)
            load(server.url, paths[:1], 1, args.response_format)
        results = {(c, n): [] for c in configs for n in CLIENTS}
        for _ in range(args.rounds):
            for clients in CLIENTS:
                for config in configs:
                    results[config, clients].append(load(servers[config].url, paths, clients, args.response_format))
                    print(config[0], f"batch {config[2]}", clients, "clients:",
                          f"{audio_s / results[config, clients][-1]['wall']:.2f} audio s/s", flush=True)
    finally:
        for server in servers.values():
            server.stop()

    def throughput(config, clients):
        return statistics.median(audio_s / r["wall"] for r in results[config, clients])

    command = "python benchmarks/serve.py " + " ".join(sys.argv[1:])
    table = []
    for clients in CLIENTS:
        for config in configs:
            runs = results[config, clients]
            lat = sorted(x for r in runs for x in r["latencies"])
            table.append({"model": config[0], "spec": config[1], "max_batch": config[2], "clients": clients,
                          "throughput": throughput(config, clients), "failed": sum(r["failed"] for r in runs),
                          **({f"p{q}_s": percentile(lat, q) for q in (50, 95)} if lat else {})})
    write_json(args.json, {
        "command": command.strip(), "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
        "response_format": args.response_format,
        "seconds": time.perf_counter() - started, "requests": args.requests, "audio_s": audio_s,
        "load_before": load_before, "load_after": os.getloadavg()[0], "encoder_speedup_b8": speedup,
        "encoder_share_b8": share, "expected_gain": expected, "rows": table})
    lines = [f"### liteasr serve under load: {args.base} vs {args.compressed.rstrip('/').split('/')[-1]} "
             f"({time.strftime('%Y-%m-%d')}; JSON: {args.json})",
             "",
             f"Command: `{command.strip()}`"
             f" ({time.perf_counter() - started:.0f} s). {args.requests} librispeech_other clips ({audio_s:.0f} s of "
             f"audio) per run, answered as {args.response_format}; four servers on 127.0.0.1 (default 2 torch threads each) and the clients on the "
             f"same machine, runs interleaved; load average (1 min) {load_before:.1f} before the run, "
             f"{os.getloadavg()[0]:.1f} at its end (the servers and clients themselves load the machine while "
             "they run; more means other jobs shared it). Compare within a row group.",
             "",
             f"Encoder, measured in-process (batch 8, interleaved, each model on the window its server gives the median clip): compressed {speedup:.3f}x faster than dense; "
             f"the encoder is {share:.0%} of dense transcription time at batch 8, so the expected end-to-end "
             f"gain is {expected:.3f}x.",
             "",
             "| model | max batch | clients | throughput (audio s / s) | p50 latency s | p95 latency s | failed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        p50, p95 = (f"{r[f'p{q}_s']:.2f}" if f"p{q}_s" in r else "-" for q in (50, 95))
        lines.append(f"| {r['model']} | {r['max_batch']} | {r['clients']} | {r['throughput']:.2f} | {p50} | {p95} "
                     f"| {r['failed']} |")
    lines.append("")
    for clients in CLIENTS[1:]:
        on, off = configs[0], configs[1]
        lite_on = configs[2]
        lines.append(f"- {clients} clients: batching on / off (dense) = "
                     f"{throughput(on, clients) / throughput(off, clients):.2f}x; compressed / dense (batching on) = "
                     f"{throughput(lite_on, clients) / throughput(on, clients):.2f}x (expected {expected:.2f}x)")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
