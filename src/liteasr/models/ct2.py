"""Read CTranslate2 / faster-whisper Whisper models and convert them to Hugging Face exactly.

The CTranslate2 `model.bin` layout (binary version 6, written by
`ctranslate2.specs.model_spec.ModelSpec.save`):

    uint32 version | string spec_name | uint32 revision | uint32 n_variables
    n_variables x (string name | uint8 rank | rank x uint32 dims | uint8 dtype | uint32 nbytes | data)
    uint32 n_aliases | n_aliases x (string alias | string target)

where a string is a uint16 length (including a trailing NUL) followed by UTF-8 bytes.
We parse it ourselves so conversion needs neither the ctranslate2 runtime nor a GPU.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from liteasr.errors import UserError

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: None}  # 5 = bfloat16


@dataclass
class CT2Weights:
    """A CTranslate2 model.bin as read: its spec name, format revision and variables (the runtime that runs
    CTranslate2 models is runtime.ct2_model.CT2Model)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]

    def get(self, name: str) -> np.ndarray:
        """A float32 weight, dequantized when the model was saved with int8/int16 weights."""
        value = self.variables[name]
        scale = self.variables.get(name.replace("/weight", "/weight_scale")) if name.endswith("/weight") else None
        if value.dtype in (np.int8, np.int16):
            if scale is None:
                raise UserError(f"quantized variable {name} has no weight_scale")
            flat = value.reshape(value.shape[0], -1).astype(np.float32)
            scale = np.asarray(scale, dtype=np.float32)
            flat = flat / (scale.reshape(-1, 1) if scale.ndim else scale)  # ct2 stores w * scale
            return flat.reshape(value.shape)
        return value.astype(np.float32)


def _bf16_to_f32(raw: bytes, shape: list[int]) -> np.ndarray:
    u16 = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
    return u16.view(np.float32).reshape(shape)


def read_ct2(path: str | Path) -> CT2Weights:
    """Parse a CTranslate2 `model.bin` into numpy arrays (aliases resolved)."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    try:
        version = take("I")
        if not 5 <= version <= 6:
            raise UserError(f"{path}: unsupported CTranslate2 binary version {version} (expected 5 or 6)")
        spec, revision = string(), take("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = string()
            rank = take("B")
            shape = [take("I") for _ in range(rank)]
            dtype_id, nbytes = take("B"), take("I")
            raw = data[pos : pos + nbytes]
            pos += nbytes
            if dtype_id not in _DTYPES:
                raise UserError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
            if _DTYPES[dtype_id] is None:
                variables[name] = _bf16_to_f32(raw, shape)
            else:
                variables[name] = np.frombuffer(raw, dtype=_DTYPES[dtype_id]).reshape(shape)
        for _ in range(take("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: truncated or corrupt CTranslate2 model ({exc})") from None
    return CT2Weights(spec, revision, variables)


def is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _count_layers(names, prefix: str) -> int:
    found = {int(m.group(1)) for n in names if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
    return max(found) + 1 if found else 0


def _state_dict(ct2: CT2Weights, n_enc: int, n_dec: int, d_model: int) -> dict[str, torch.Tensor]:
    """Map CTranslate2 variable names onto `WhisperForConditionalGeneration` parameter names."""
    g = lambda name: torch.from_numpy(np.ascontiguousarray(ct2.get(name)))  # noqa: E731
    sd: dict[str, torch.Tensor] = {}

    def linear(dst: str, src: str, rows: slice | None = None, bias: bool = True):
        w = g(f"{src}/weight")
        sd[f"{dst}.weight"] = w if rows is None else w[rows].clone()
        if bias:
            b = g(f"{src}/bias")
            sd[f"{dst}.bias"] = b if rows is None else b[rows].clone()

    def norm(dst: str, src: str):
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = g(f"{src}/gamma"), g(f"{src}/beta")

    q, k, v = slice(0, d_model), slice(d_model, 2 * d_model), slice(2 * d_model, 3 * d_model)

    def self_attention(dst: str, src: str):
        # CTranslate2 fuses q/k/v into linear_0; Whisper's k_proj has no bias (ct2 stores zeros).
        linear(f"{dst}.q_proj", f"{src}/linear_0", q)
        linear(f"{dst}.k_proj", f"{src}/linear_0", k, bias=False)
        linear(f"{dst}.v_proj", f"{src}/linear_0", v)
        linear(f"{dst}.out_proj", f"{src}/linear_1")

    def block(dst: str, src: str):
        """What encoder and decoder layers share: self-attention, feed-forward, their norms."""
        self_attention(f"{dst}.self_attn", f"{src}/self_attention")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    e = "model.encoder"
    for i in (1, 2):
        sd[f"{e}.conv{i}.weight"], sd[f"{e}.conv{i}.bias"] = g(f"encoder/conv{i}/weight"), g(f"encoder/conv{i}/bias")
    sd[f"{e}.embed_positions.weight"] = g("encoder/position_encodings/encodings")
    norm(f"{e}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        block(f"{e}.layers.{i}", f"encoder/layer_{i}")

    d = "model.decoder"
    sd[f"{d}.embed_tokens.weight"] = g("decoder/embeddings/weight")
    sd[f"{d}.embed_positions.weight"] = g("decoder/position_encodings/encodings")
    norm(f"{d}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        src, dst = f"decoder/layer_{i}", f"{d}.layers.{i}"
        block(dst, src)
        # Cross attention: linear_0 = q, linear_1 = fused k/v, linear_2 = out.
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        linear(f"{dst}.encoder_attn.k_proj", f"{src}/attention/linear_1", slice(0, d_model), bias=False)
        linear(f"{dst}.encoder_attn.v_proj", f"{src}/attention/linear_1", slice(d_model, 2 * d_model))
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
    sd["proj_out.weight"] = sd[f"{d}.embed_tokens.weight"]
    return sd


def convert_ct2_whisper(src: str | Path, dst: str | Path) -> None:
    """Convert a CTranslate2 Whisper directory into a Hugging Face Whisper directory at `dst`."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    src, dst = Path(src), Path(dst)
    ct2 = read_ct2(src / "model.bin")
    if ct2.spec != "WhisperSpec":
        raise UserError(f"{src}: CTranslate2 model is a {ct2.spec}, not a Whisper model")
    if not (src / "tokenizer.json").is_file():
        raise UserError(f"{src}: CTranslate2 Whisper directory has no tokenizer.json")
    ct2_config = json.loads((src / "config.json").read_text())
    names = ct2.variables.keys()
    n_enc, n_dec = _count_layers(names, "encoder"), _count_layers(names, "decoder")
    vocab, d_model = ct2.variables["decoder/embeddings/weight"].shape
    n_mels = ct2.variables["encoder/conv1/weight"].shape[1]
    ffn = ct2.variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]

    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(src / "tokenizer.json"),
        unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
    )
    tid = tokenizer.convert_tokens_to_ids
    eot, sot = tid("<|endoftext|>"), tid("<|startoftranscript|>")
    lang_ids = ct2_config.get("lang_ids") or []
    # English-only checkpoints have 51864 tokens (openai/whisper's rule); faster-whisper's
    # converter still lists lang_ids for them, so the config cannot tell.
    multilingual = vocab >= 51865 and len(lang_ids) > 0

    config = WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(n_mels),
        d_model=int(d_model),
        encoder_layers=n_enc,
        decoder_layers=n_dec,
        encoder_attention_heads=int(ct2.variables["encoder/num_heads"]),
        decoder_attention_heads=int(ct2.variables["decoder/num_heads"]),
        encoder_ffn_dim=int(ffn),
        decoder_ffn_dim=int(ct2.variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(ct2.variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(ct2.variables["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=ct2_config.get("suppress_ids"),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin"),
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    sd = _state_dict(ct2, n_enc, n_dec, int(d_model))
    model.load_state_dict(sd, strict=True, assign=True)
    model.tie_weights()
    model.eval()

    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=config.suppress_tokens, begin_suppress_tokens=config.begin_suppress_tokens,
        no_timestamps_token_id=tid("<|notimestamps|>"),
        prev_sot_token_id=tid("<|startofprev|>"),
        max_initial_timestamp_index=50,
        is_multilingual=multilingual,
        alignment_heads=ct2_config.get("alignment_heads"),
        return_timestamps=False,
    )
    if multilingual:
        gen.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in lang_ids}
        gen.task_to_id = {"transcribe": tid("<|transcribe|>"), "translate": tid("<|translate|>")}
        # As the Hub's openai/whisper-* configs: plain generate() detects the language (position 1 left
        # open) and then transcribes; without it generate() leaves the task token out of the prompt.
        gen.forced_decoder_ids = [[1, None], [2, gen.task_to_id["transcribe"]]]
    model.generation_config = gen

    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    WhisperFeatureExtractor(feature_size=int(n_mels)).save_pretrained(dst)
    (dst / "liteasr_source.json").write_text(json.dumps({"converted_from": str(src), "format": "ctranslate2"}))
