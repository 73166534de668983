"""Issue 11 items 5-8 without a model: language tags, routes, capabilities, typed provider options,
OpenCC scripts, bundled:base assembly (two processes at once) and device checks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from asrhub.core import bundled
from asrhub.core.commands import parse_command
from asrhub.core.config import ConfigError, load_config, parse_config
from asrhub.core.errors import HubError
from asrhub.core.language import model_language, parse_language
from asrhub.engine.scheduler import Scheduler
from asrhub.providers.checks import check_request
from asrhub.providers.localise import localise_stream_result, localise_text
from asrhub.providers.models import resolve_device
from asrhub.providers.registry import ProviderSet, validate_providers


def test_bcp47_tags() -> None:
    assert parse_language("zh").script == "Hans"
    assert parse_language("zh-CN").script == "Hans"
    assert parse_language("zh-tw") == parse_language("zh-TW")
    assert parse_language("zh-TW").tag == "zh-TW" and parse_language("zh-TW").script == "Hant"
    assert parse_language("zh-HK").script == "Hant"
    assert parse_language("zh-Hant").script == "Hant"
    assert parse_language("en-US").code == "en" and parse_language("en-US").script is None
    assert parse_language("AUTO").is_auto
    assert model_language("zh-TW") == "zh" and model_language("auto") == "auto" and model_language(None) is None
    for bad in ("english!", "z", "zh_TW", "-en"):
        with pytest.raises(HubError) as e:
            parse_language(bad)
        assert e.value.code.value == "invalid_command"


def test_start_command_fields() -> None:
    cmd = parse_command('{"type":"start","language":"zh-tw","task":"translate","prompt":"Hi","hotwords":["a b"]}')
    assert cmd.language == "zh-TW" and cmd.task == "translate" and cmd.prompt == "Hi" and cmd.hotwords == ["a b"]
    for body in ('{"type":"start","language":"zh TW"}', '{"type":"start","task":"summarise"}',
                 '{"type":"start","hotwords":"one"}', '{"type":"start","hotwords":[""]}'):
        with pytest.raises(HubError) as e:
            parse_command(body)
        assert e.value.code.value == "invalid_command", body


def _providers(yaml_providers: dict) -> ProviderSet:
    return ProviderSet(parse_config({"providers": yaml_providers}).providers, Scheduler(1))


def test_default_config_routes() -> None:
    ps = ProviderSet(load_config().providers, Scheduler(1))
    assert ps.route(None) is None  # no language: providers.default (English tiny.en)
    assert ps.route("en") == "faster_whisper" and ps.route("en-US") == "faster_whisper"
    for lang in ("zh", "zh-TW", "de", "auto"):
        assert ps.route(lang) == "whisper_multi", lang
    assert ps.route(None, "translate") == "whisper_multi" and ps.route("en", "translate") == "whisper_multi"


def test_routes_name_configured_providers() -> None:
    with pytest.raises(ConfigError, match="providers.routes.0.provider.*'nope'"):
        parse_config({"providers": {"instances": {"faster_whisper": {}},
                                    "routes": [{"language": "zh", "provider": "nope"}]}})


def test_capabilities_refuse_what_a_provider_cannot_do() -> None:
    ps = _providers({"default": "en", "instances": {
        "en": {"type": "faster_whisper", "model": "bundled:tiny.en"},
        "multi": {"type": "faster_whisper", "model": "bundled:base"},
        "ow": {"type": "openai_whisper", "model": "bundled:base"},
        "ko": {"type": "vosk"}}})
    en, multi, ow, ko = (ps.providers[n] for n in ("en", "multi", "ow", "ko"))
    check_request(multi, "zh-TW", "translate", "prompt", ["hot"])
    check_request(en, "en-GB", "transcribe", "prompt", ["hot"])
    cases = [(en, "zh", "transcribe", None, None, "language 'zh'"),
             (en, None, "translate", None, None, "cannot translate"),
             (multi, "xx", "transcribe", None, None, "language 'xx'"),
             (ow, "zh", "transcribe", None, ["hot"], "'hotwords'"),
             (ko, "ko", "transcribe", "a prompt", None, "'prompt'")]
    for p, lang, task, prompt, hot, msg in cases:
        with pytest.raises(HubError, match=msg) as e:
            check_request(p, lang, task, prompt, hot)
        assert e.value.code.value == "invalid_command"
    caps = {d["name"]: d["capabilities"] for d in ps.describe()}
    assert caps["multi"]["translate"] and caps["multi"]["hotwords"] and caps["multi"]["prompt"]
    assert not caps["en"]["translate"] and not caps["ow"]["hotwords"] and not caps["ko"]["prompt"]


def test_typed_provider_options_name_the_bad_key() -> None:
    bad = {"default": "fw", "instances": {"fw": {"type": "faster_whisper", "beam_sise": 5}}}
    cfg = parse_config({"providers": bad})  # the core config knows no provider types ...
    with pytest.raises(ConfigError) as e:   # ... the registry validates each block against its type
        validate_providers(cfg.providers)
    assert "providers.instances.fw.beam_sise" in str(e.value) and "provider 'fw'" in str(e.value)
    assert "beam_size" in str(e.value)  # the keys it does know
    with pytest.raises(ConfigError, match="providers.instances.fw.device"):
        validate_providers(parse_config({"providers": {"default": "fw", "instances": {
            "fw": {"type": "faster_whisper", "device": "gpu"}}}}).providers)
    with pytest.raises(ConfigError, match="unknown key 'providers.instances.g.phrase'"):
        _providers({"default": "g", "instances": {"g": {"type": "google", "phrase": ["x"]}}})
    ps = _providers({"default": "fw", "instances": {"fw": {"type": "faster_whisper", "beam_size": 3}}})
    assert ps.providers["fw"].settings.beam_size == 3  # type: ignore[attr-defined]


def test_serve_refuses_a_misspelt_provider_option(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("providers:\n  instances:\n    faster_whisper:\n      model: bundled:tiny.en\n      compte_type: int8\n")
    out = subprocess.run([sys.executable, "-m", "asrhub.cli", "serve", "--config", str(cfg), "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "compte_type" in out.stderr and "faster_whisper" in out.stderr


def test_cuda_is_a_config_error_without_a_gpu() -> None:
    assert resolve_device("auto", "p", lambda: 0, "lib") == "cpu"
    assert resolve_device("auto", "p", lambda: 1, "lib") == "cuda"
    assert resolve_device("cpu", "p", lambda: 1, "lib") == "cpu"
    with pytest.raises(ConfigError, match="provider 'p' has device 'cuda'.*sees no CUDA"):
        resolve_device("cuda", "p", lambda: 0, "lib")

    def broken() -> int:
        raise RuntimeError("built without CUDA")
    assert resolve_device("auto", "p", broken, "lib") == "cpu"


def test_opencc_scripts() -> None:
    assert localise_text("廣州市房地產", "zh") == "广州市房地产"
    assert localise_text("广州市房地产", "zh-TW") == "廣州市房地產"
    assert localise_text("广州市房地产", "zh-HK") == "廣州市房地產"
    assert localise_text("Hello 廣州", "en") == "Hello 廣州"  # only Chinese is converted
    from asrhub.providers.base import StreamResult
    r = StreamResult("u1", "广州市房地产", False, 0, 10, stable_text="广州", language="zh")
    tw = localise_stream_result(r, "zh-TW")  # partials too: text and stable text, labelled with the asked tag
    assert (tw.text, tw.stable_text, tw.language) == ("廣州市房地產", "廣州", "zh-TW")
    detected = localise_stream_result(dataclasses.replace(r, text="廣州"), "auto")
    assert detected.text == "广州" and detected.language == "zh"  # auto: the detected language, Simplified


_ASSEMBLE = """
import sys
from pathlib import Path
from asrhub.core.bundled import BASE, assemble
print(assemble(BASE, Path(sys.argv[1])))
"""


def test_bundled_base_assembles_once_with_two_processes_at_once(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", _ASSEMBLE, str(root)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folder = root / "ct2" / "base"
    assert {o.strip() for o, _ in outs} == {str(folder)}
    assert (folder / "model.bin").stat().st_size == bundled.BASE.size
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert [p.name for p in (root / "ct2").iterdir()] == ["base"]  # no temporary folder left behind
    import hashlib
    h = hashlib.sha256()
    with open(folder / "model.bin", "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    assert h.hexdigest() == bundled.BASE.sha256


def test_bundled_base_checksum_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    wrong = dataclasses.replace(bundled.BASE, sha256="0" * 64)
    with pytest.raises(bundled.BundledModelError, match="sha256.*expected 145,217,532 bytes with sha256 0000"):
        bundled.assemble(wrong, tmp_path)
    assert not (tmp_path / "ct2" / "base").exists() and list((tmp_path / "ct2").iterdir()) == []
    with pytest.raises(bundled.BundledModelError, match="bundled model 'large' is not available"):
        bundled.bundled_model_dir("large", str(tmp_path))


def test_the_example_config_validates_with_every_provider_option() -> None:
    from asrhub.core.config import DEFAULT_CONFIG_PATH
    cfg = load_config(DEFAULT_CONFIG_PATH.parent / "config.example.yaml", env={})
    validate_providers(cfg.providers)  # every block, disabled ones too
    assert [r.provider for r in cfg.providers.routes] == ["whisper_multi", "faster_whisper", "whisper_multi"]
