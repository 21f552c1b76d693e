"""torch.distributed on this CPU box, evaluation memory, and a large-v3 1-vs-8-GPU estimate.

    python benchmarks/distributed.py [--repeats 2] [--json benchmarks/distributed.json] [--markdown benchmarks/RESULTS.md]

1. Throughput: `liteasr calibrate` and `liteasr eval` (tiny.en, real speech) as one process with 2
   threads vs `torchrun --nproc-per-node 2` with 1 thread each, runs interleaved (1, 2, 1, 2, ...).
   Wall time of the whole command, start-up included.
2. Peak memory of evaluate_dataset for 4 and 16 clips (tracemalloc: Python and numpy allocations,
   i.e. the audio; not torch's own buffers), next to what holding every clip's audio would take.
3. An estimate for large-v3 on 1 and 8 GPUs, from per-window costs measured on one GPU by
   benchmarks/gpu_costs.py (benchmarks/gpu_costs_h200.json) and the assumptions stated below.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import emit, speech_or_exit, write_json

HERE = Path(__file__).parent
SRC = (HERE.parent / "src").resolve()

# --- assumptions of the estimate (not measured here) ---
CAL_WINDOWS = 1024  # calibration windows (e.g. 1024 clips padded, or ~2000 clips packed)
SHARD_WINDOWS = 16  # liteasr's default
PROBES = 192 * 6  # large-v3: 32 layers x 6 projections, 6 probed ranks each (--allocation encoder)
PROBE_WINDOWS = 8  # --probe-clips default
# Utterances of the Open ASR Leaderboard's eight ESB test sets (dataset card of
# hf-audio/esb-datasets-test-only-sorted; not checked offline): AMI, Earnings-22, GigaSpeech,
# LibriSpeech clean + other, SPGISpeech, TED-LIUM, VoxPopuli.
ESB_UTTERANCES = 12643 + 2741 + 19898 + 2620 + 2939 + 39341 + 1155 + 1842
STATS_BYTES = 32 * 8 * (5 * (1280 ** 2 + 1281) + 5120 ** 2 + 5121)  # one shard's float64 count/sum/outer
ALL_GATHER_GBPS = 150  # assumed effective NVLink all_gather receive bandwidth per GPU (GB/s)


def run(cmd: list[str], threads: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return time.perf_counter() - t0


def throughput(speech: Path, repeats: int, folder: Path, data: dict) -> list[str]:
    py = sys.executable
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "liteasr"]
    single = [py, "-m", "liteasr"]
    cal = ["calibrate", "tiny.en", "--calibration", str(speech / "librispeech_calib"), "--calibration-samples", "16",
           "--packing", "pad", "--device", "cpu", "--overwrite", "--shard-windows", "4"]
    ev = ["eval", "tiny.en", "--data", str(speech / "librispeech_other"), "--samples", "8", "--no-latency",
          "--device", "cpu"]
    rows = []
    for name, command, unit, n in (("calibrate (16 clips, 16 windows)", cal, "windows", 16),
                                ("eval (8 clips of librispeech_other)", ev, "clips", 8)):
        times = {1: [], 2: []}
        for r in range(repeats):
            for procs in (1, 2):
                extra = ["-o", str(folder / f"s{procs}.st")] if command is cal else ["--json", str(folder / f"e{procs}.json")]
                cmd = (single if procs == 1 else torchrun) + command + extra
                times[procs].append(run(cmd, threads=2 if procs == 1 else 1))
        t1, t2 = min(times[1]), min(times[2])
        data[name] = {"one_process_s": t1, "two_processes_s": t2, "speedup": t1 / t2, "items": n, "unit": unit}
        rows.append(f"| {name} | {t1:.1f} s ({n / t1:.2f} {unit}/s) | {t2:.1f} s ({n / t2:.2f} {unit}/s) | {t1 / t2:.2f}x |")
    one, two = (json.loads((folder / f"e{p}.json").read_text())[0]["datasets"] for p in (1, 2))
    same = all(one[k]["wer"] == two[k]["wer"] for k in one)
    wers = ", ".join(f"{v['wer']:.2f}" for v in one.values())
    data["same_wer"], data["wer"] = same, [v["wer"] for v in one.values()]
    rows.append(f"\nSame WER from 1 and 2 processes: {same} (WER {wers}).")
    return rows


def peak_memory(speech: Path, out: dict) -> list[str]:
    from liteasr.models import whisper
    from liteasr.data.audio import load_audio, read_dataset
    from liteasr.evaluation.evaluate import evaluate_dataset

    loaded = whisper.load("tiny.en")
    data = read_dataset(speech / "librispeech_other")
    rows = []
    for n in (4, 16):
        data_n = type(data)(data.name, data.clips[:n])
        tracemalloc.start()
        evaluate_dataset(loaded, data_n, batch_size=4, progress=False)
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start()
        audios = [load_audio(c) for c in data_n.clips]  # what evaluation held before it streamed
        held = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del audios
        out[n] = {"streamed_mib": streamed / 2**20, "held_mib": held / 2**20}
        rows.append(f"| {n} | {streamed / 2**20:.1f} MiB | {held / 2**20:.1f} MiB |")
    return rows


def estimate(data: dict) -> list[str]:
    c = json.loads((HERE / "gpu_costs_h200.json").read_text())
    enc, stats, layer = c["encoder_s_per_window"], c["stats_s_per_window"], c["encoder_layer_s_per_window"]
    eigh = 160 * c["eigh_1280_s"] + 32 * c["eigh_5120_s"]
    probe = PROBE_WINDOWS * layer * sum(32 - i for i in range(32)) / 32  # a probe runs its layer to the last
    rounds8 = -(-CAL_WINDOWS // SHARD_WINDOWS) // 8
    comm8 = rounds8 * 7 * STATS_BYTES / (ALL_GATHER_GBPS * 1e9)
    rows = []
    for gpus in (1, 8):
        cal = CAL_WINDOWS * (enc + stats) / gpus + (comm8 if gpus == 8 else 0.0)
        probing = PROBES * probe / gpus
        evaluation = ESB_UTTERANCES * c["transcribe_s_per_clip"] / gpus
        # each layer decomposed by one GPU, then its eigenvectors (as large as the statistics) broadcast
        spread = eigh / gpus + (STATS_BYTES / (ALL_GATHER_GBPS * 1e9) if gpus == 8 else 0.0)
        total = cal + spread + probing + evaluation
        data[gpus] = {"calibration_s": cal, "eigh_s": spread, "probing_s": probing, "evaluation_s": evaluation,
                      "total_s": total}
        rows.append(f"| {gpus} | {cal:.0f} s | {spread:.1f} s | {probing:.0f} s | {evaluation / 60:.1f} min | "
                    f"{total / 60:.1f} min |")
    return rows, c, eigh, probe, comm8


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/distributed.json")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    speech = speech_or_exit()
    t0 = time.time()
    data = {"throughput": {}, "peak_memory": {}, "estimate_large_v3": {}}
    with tempfile.TemporaryDirectory() as tmp:
        rows = throughput(speech, args.repeats, Path(tmp), data["throughput"])
    memory = peak_memory(speech, data["peak_memory"])
    est, c, eigh, probe, comm8 = estimate(data["estimate_large_v3"])
    command = "python benchmarks/distributed.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()[0]
    write_json(args.json, {"command": command.strip(), "date": time.strftime("%Y-%m-%d"),
                           "seconds": time.time() - t0, "load_average_at_end": load, **data})
    lines = [
        f"### torch.distributed: 1 vs 2 processes on this 2-core CPU ({time.strftime('%Y-%m-%d')}; JSON: {args.json})",
        "",
        f"Command: `{command.strip()}` ({time.time() - t0:.0f} s; load average {load:.1f} at its end). One process with 2 threads vs "
        f"`torchrun --standalone --nproc-per-node 2` with 1 thread each, interleaved, best of {args.repeats}; "
        "wall time of the whole command including start-up (imports, model load: several seconds per process).", "",
        "| work | 1 process | 2 processes | speedup |", "|---|---:|---:|---:|", *rows, "",
        "Peak traced memory (tracemalloc: Python and numpy, i.e. decoded audio) of `evaluate_dataset` (tiny.en, "
        "batch 4, librispeech_other), and of holding every clip's audio as evaluation did before it streamed:", "",
        "| clips | streamed evaluation | all audio held |", "|---:|---:|---:|", *memory, "",
        "#### Estimate: large-v3, calibration + damage probing + ESB evaluation, 1 vs 8 GPUs", "",
        f"Per-window costs measured on one {c['gpu']} by `python benchmarks/gpu_costs.py` (random weights with "
        f"large-v3 shapes, fp16, batch {c['batch']}; benchmarks/gpu_costs_h200.json): encoder "
        f"{c['encoder_s_per_window'] * 1e3:.1f} ms/window, float64 statistics of the 192 projections "
        f"{c['stats_s_per_window'] * 1e3:.1f} ms/window, one encoder layer {c['encoder_layer_s_per_window'] * 1e3:.2f} "
        f"ms/window, eigh 1280² {c['eigh_1280_s'] * 1e3:.0f} ms and 5120² {c['eigh_5120_s'] * 1e3:.0f} ms, greedy "
        f"transcription {c['transcribe_s_per_clip'] * 1e3:.1f} ms/clip at {c['decode_tokens_per_clip']} tokens/clip.", "",
        f"Assumptions: {CAL_WINDOWS} calibration windows in shards of {SHARD_WINDOWS}; each 8-GPU round all-gathers "
        f"every rank's shard statistics ({STATS_BYTES / 1e9:.1f} GB per shard, 7 received per GPU) at "
        f"{ALL_GATHER_GBPS} GB/s ({comm8:.1f} s in all); eigendecompositions split evenly, eigenvectors broadcast "
        f"at the same bandwidth; "
        f"{PROBES} damage probes of {PROBE_WINDOWS} windows, {probe * 1e3:.0f} ms each on average (a probe runs "
        f"from its layer to the last), perfectly balanced; {ESB_UTTERANCES:,} ESB test utterances "
        f"(dataset card counts) at the measured per-clip cost, 40 tokens per clip; no data-loading stalls.", "",
        "| GPUs | calibration | eigh | damage probing | ESB evaluation (one model) | total |",
        "|---:|---:|---:|---:|---:|---:|", *est]
    emit(lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
