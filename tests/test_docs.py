"""The README's and RESULTS.md's numbers come from committed JSON: a rerun of a benchmark that changes them
fails here until the documents say the same."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# README row label -> benchmarks/tiny_en.json result label
ROWS = {"dense, PyTorch": "tiny.en (dense)",
        "faster-whisper (CTranslate2 int8)": "faster-whisper's engine: CTranslate2 int8, dense",
        "liteasr 0.7, PyTorch": "--target-params 0.7 (default)",
        "liteasr 0.7, ONNX Runtime int8": "--target-params 0.7, ONNX Runtime int8"}


def readme_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## What to expect"): text.index("## Two commands")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in ROWS:
            rows[cells[0]] = cells[1:]
    return rows


def test_readme_sample_table_is_the_benchmark_json():
    results = {r["label"]: r for r in json.loads((ROOT / "benchmarks" / "tiny_en.json").read_text())["results"]}
    table = readme_table()
    assert set(table) == set(ROWS), "every row of the README's sample table"
    for row, cells in table.items():
        r = results[ROWS[row]]
        params, read, nonnative, ms, rtfx = cells
        assert params == f"{r['encoder_params'] / 1e6:.2f} M"
        for cell, name in ((read, "librispeech_other"), (nonnative, "speechocean_train")):
            d = r["datasets"][name]
            expected = f"{d['wer']:.2f}" + (f" ({d['delta_wer']['delta']:+.2f})" if row.startswith("liteasr") else "")
            assert cell == expected, (row, name)
        dense, faster = results[ROWS["dense, PyTorch"]], results[ROWS["faster-whisper (CTranslate2 int8)"]]
        encoder_ms = r["encoder_ms"]["batch_1"]
        assert ms == f"{encoder_ms:.0f} ({dense['encoder_ms']['batch_1'] / encoder_ms:.2f}x)"
        assert rtfx == f"{rtfx_of(r):.1f} ({rtfx_of(r) / rtfx_of(faster):.2f}x)"


def rtfx_of(result: dict) -> float:
    """RTFx over every set of a result (as benchmarks/tiny_en.py reports it)."""
    return sum(d["audio_s"] for d in result["datasets"].values()) / sum(
        d["audio_s"] / d["rtfx"] for d in result["datasets"].values())


def test_results_sections_name_committed_json():
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    sections = [s for s in text.split("\n### ")[1:]]
    assert sections
    for section in sections:
        title = section.splitlines()[0]
        named = re.findall(r"benchmarks/[\w.]+\.json", section)
        assert named, f"RESULTS.md section without its JSON: {title}"
        for path in named:
            assert (ROOT / path).is_file(), f"{title}: {path} is not committed"
