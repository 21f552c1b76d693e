"""Write a compressed model as a Hugging Face directory that loads anywhere (compressed model -> checkpoint)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from liteasr import __version__
from liteasr.atomic import atomic_dir
from liteasr.planning.flops import EncoderCost, encoder_cost

HF_CODE = Path(__file__).parent / "models" / "hf"
AUTO_MAP = {
    "AutoConfig": "configuration_lite_whisper.LiteWhisperConfig",
    "AutoModel": "modeling_lite_whisper.LiteWhisperForConditionalGeneration",
    "AutoModelForSpeechSeq2Seq": "modeling_lite_whisper.LiteWhisperForConditionalGeneration",
}


@dataclass
class Provenance:
    """What the model card records about how a checkpoint was made."""

    base_model: str
    base_cost: EncoderCost
    calibration: str = ""
    method: str = ""
    command: str = ""
    calibration_hashes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def model_card(lite, prov: Provenance) -> str:
    after = encoder_cost(lite)
    before = prov.base_cost
    rows = "\n".join(
        f"| {i} | " + " | ".join(str(ranks.get(n, "dense")) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")) + " |"
        for i, ranks in enumerate(lite.config.low_rank_config))
    return f"""---
base_model: {prov.base_model}
library_name: transformers
tags: [whisper, lite-whisper, liteasr, low-rank]
---
# {prov.base_model}, encoder compressed with liteasr

Encoder linear layers are replaced by two thin matrices chosen from the principal components of
their outputs on calibration audio (LiteASR). Decoder unchanged.

| | base | compressed | kept |
|---|---:|---:|---:|
| encoder parameters | {before.params:,} | {after.params:,} | {after.params / before.params:.1%} |
| encoder linear parameters | {before.linear_params:,} | {after.linear_params:,} | {after.linear_params / before.linear_params:.1%} |
| encoder GFLOPs per 30 s window | {before.gflops:.2f} | {after.gflops:.2f} | {after.flops / before.flops:.1%} |

- Base model: `{prov.base_model}`
- Calibration data: {prov.calibration}
- Rank selection: {prov.method}
- Made with liteasr {__version__}: `{prov.command}`

## Ranks per encoder layer

| layer | q_proj | k_proj | v_proj | out_proj | fc1 | fc2 |
|---|---|---|---|---|---|---|
{rows}

## Use

```python
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained("PATH", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("PATH")
```
or `liteasr transcribe PATH audio.wav`.
"""


def calibration_hashes(path: str | Path) -> set[str]:
    """Audio hashes of the clips a liteasr checkpoint was calibrated on (empty for other models)."""
    meta = Path(path) / "liteasr.json"
    if not meta.is_file():
        return set()
    return set(json.loads(meta.read_text()).get("calibration_hashes", []))


def save_checkpoint(lite, processor, out: str | Path, prov: Provenance, overwrite: bool = False) -> Path:
    """Atomically write config, safetensors weights, model code, processor files and a model card."""
    with atomic_dir(out, overwrite=overwrite) as tmp:
        lite.config.auto_map = dict(AUTO_MAP)
        # transformers writes only on rank 0 once torch.distributed is up; liteasr decides which process
        # writes where (under torchrun the other ranks keep private copies, e.g. for sweep to evaluate)
        lite.should_save_on_this_rank = lambda is_main_process: is_main_process
        try:
            lite.save_pretrained(tmp, safe_serialization=True)
        finally:
            del lite.should_save_on_this_rank
        lite.generation_config.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        processor.feature_extractor.save_pretrained(tmp)  # preprocessor_config.json, for older transformers
        for name in ("configuration_lite_whisper.py", "modeling_lite_whisper.py"):
            shutil.copyfile(HF_CODE / name, tmp / name)
        (tmp / "README.md").write_text(model_card(lite, prov))
        (tmp / "liteasr.json").write_text(json.dumps({"liteasr_version": __version__, "base_model": prov.base_model,
                                                      "calibration": prov.calibration, "method": prov.method,
                                                      "command": prov.command,
                                                      "calibration_hashes": prov.calibration_hashes, **prov.extra}, indent=1))
    return Path(out)
