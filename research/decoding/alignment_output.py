"""What the exported decoder's word-timestamp output costs ONNX Runtime: decoder_model.onnx (the prompt pass,
run once per search) exported with and without `alignment_weights`, timed interleaved on the same inputs
(tiny.en, 8 clips, a 3-token prompt, 2 threads; the output itself is not fetched, as in decoding).

    python research/decoding/alignment_output.py [--json research/decoding/alignment_output.json]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from liteasr.models import whisper
from liteasr.runtime.export import export_decoder
from liteasr.runtime.layout import ALIGNMENT
from liteasr.runtime.onnx_model import session


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default="research/decoding/alignment_output.json")
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    model = whisper.load("tiny.en").model
    folder = Path(tempfile.mkdtemp())
    export_decoder(model, folder / "with.onnx", with_past=False)
    export_decoder(model, folder / "without.onnx", with_past=False, word_timestamps=False)
    sessions = {k: session(folder / f"{k}.onnx", 2) for k in ("with", "without")}
    sot = model.generation_config.decoder_start_token_id
    ids = np.array([[sot, sot + 105, sot + 106]] * 8, dtype=np.int64)
    encoded = np.random.default_rng(0).standard_normal((8, 1500, model.config.d_model)).astype(np.float32)
    outputs = {k: [o.name for o in s.get_outputs() if o.name != ALIGNMENT] for k, s in sessions.items()}
    times = {k: [] for k in sessions}
    for _ in range(args.repeats):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(outputs[k], {"input_ids": ids, "encoder_hidden_states": encoded})
            times[k].append(time.perf_counter() - t0)
    result = {k: {"median_ms": 1000 * float(np.median(v[5:])), "runs": len(v) - 5} for k, v in times.items()}
    print(json.dumps(result, indent=1))
    Path(args.json).write_text(json.dumps({"command": "python research/decoding/alignment_output.py", **result}, indent=1))


if __name__ == "__main__":
    main()
