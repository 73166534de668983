"""Semantic turn mode on real speech with the real Smart Turn v3.2 model (from the installed pipecat-ai wheel).

- the model's input is pipecat's own: our features (faster-whisper's log-mel of the normalised, front-padded
  8 s window) give the probabilities of pipecat's reference implementation;
- a whole sentence followed by silence ends at the model's question on its final pause (reason `turn`), and
  its pause mid-sentence does not end it;
- the same sentence cut mid-word (LJ001-0005 at 55 %: "... in the middle of the fif") is not called
  finished (P < 0.2 at the one question) and, with no text that ends a sentence, ends at max_silence_ms.
- a sentence cut where the model is sure it is finished ("Yet these thoughts affected | Hester Prynne ...", the
  put-in pause bench_turns cut) but whose real tiny.en reading is prose left open is not ended by that answer
  at once: it ends at late_text_ms (750 ms at medium).
Measured: whole P 0.98-0.99; cut P <= 0.02 at 300 and 600 ms of silence (cuts at 54-57 %: <= 0.08); "affected"
P 0.96-0.98 at 100-300 ms.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from asrhub.core.bundled import SMART_TURN, BundledModelError, packaged_file
from asrhub.core.commands import AudioSpec, TurnOptions, VadOptions
from asrhub.core.config import PipelineConfig
from asrhub.core.errors import HubError
from asrhub.operators import turn as turn_module
from asrhub.operators.base import Item, PauseHint, SpeechEnd
from asrhub.operators.pipeline import Pipeline, build_spec
from asrhub.operators.turn import EAGERNESS, unclosed
from asrhub.operators.turn_model import TurnModel, TurnRunner, get_runner, window
from tests.support import clip, last_voiced_end, load_pcm16

SENTENCE = clip("en_ljspeech_LJ001-0005")  # "the invention of movable metal letters in the middle of the ..."
SILENCE_S = 4


def speech(fraction: float = 1.0) -> np.ndarray:
    pcm = load_pcm16(SENTENCE.path)
    return np.concatenate([pcm[:int(len(pcm) * fraction)], np.zeros(SILENCE_S * 16000, dtype=np.int16)])


async def run(pcm: np.ndarray, turn: TurnOptions) -> tuple[list[SpeechEnd], list[float | None]]:
    """Every utterance end of `pcm` (pushed at once) in semantic mode, and each answer of the model (awaited:
    on a loaded machine the live hub's 1 s answer timeout would decide instead of the model)."""
    saved = turn_module.ANSWER_TIMEOUT_S
    turn_module.ANSWER_TIMEOUT_S = 60.0
    try:
        return await _run(pcm, turn)
    finally:
        turn_module.ANSWER_TIMEOUT_S = saved


async def _run(pcm: np.ndarray, turn: TurnOptions) -> tuple[list[SpeechEnd], list[float | None]]:
    p = Pipeline(build_spec(AudioSpec(), VadOptions(), PipelineConfig(), turn=turn))
    assert p.turn is not None
    answers: list[float | None] = []
    ep = p.turn.endpointer
    answer = ep.answer

    def spy(query_id: int, probability: float | None) -> list[Item]:
        answers.append(probability)
        return answer(query_id, probability)

    ep.answer = spy  # type: ignore[method-assign]
    late: asyncio.Queue[list[Item]] = asyncio.Queue()
    p.on_late = late.put_nowait

    def take(items: list[Item]) -> list[SpeechEnd]:
        for it in items:
            if isinstance(it, PauseHint) and it.on_text is not None:
                it.on_text(None)  # no recogniser here: a stream that does not speculate answers None at once
        return [it for it in items if isinstance(it, SpeechEnd)]

    ends = take(p.push(pcm.tobytes()))
    while ep.speaking or ep._waiting():
        ends += take(await asyncio.wait_for(late.get(), 30))
    p.release()
    return ends, answers


async def test_a_whole_sentence_ends_at_the_first_question() -> None:
    ends, answers = await run(speech(), TurnOptions(mode="semantic", eagerness="low"))
    last = ends[-1]
    assert last.reason == "turn" and last.turn_probability is not None and last.turn_probability > 0.9, ends
    assert answers[-1] == last.turn_probability and len(ends) == 1  # at 150 ms of silence, not 2.5 s
    assert abs(last.offset / 16000 - 8.1) < 0.2


async def test_the_same_sentence_cut_mid_word_is_not_ended_by_the_model() -> None:
    ends, answers = await run(speech(0.55), TurnOptions(mode="semantic", max_silence_ms=1200))
    assert [e.reason for e in ends] == ["max_silence"], ends
    assert len(answers) == 1 and all(p is not None and p < 0.2 for p in answers), answers  # at 100 ms
    assert abs(ends[0].offset / 16000 - 4.5) < 0.2


def test_our_features_give_pipecats_probabilities() -> None:
    """pipecat's reference preprocessing (its vendored Whisper features, on the same front-padded window)."""
    ref = importlib.import_module("pipecat.audio.turn.smart_turn._whisper_features")  # the `test` extra has it
    model = TurnModel()
    pcm = load_pcm16(SENTENCE.path)
    clips = [pcm, pcm[:int(len(pcm) * 0.55)], load_pcm16(clip("en_jfk").path)]  # 8.1 s, 4.5 s, 11 s (> 8 s)
    ours = model.predict(clips)
    theirs = [float(model._session.run(None, {"input_features": ref.compute_whisper_log_mel_features(
        window(c))[None]})[0][0, 0]) for c in clips]
    assert np.allclose(ours, theirs, atol=0.01), (ours, theirs)
    assert ours[0] > 0.9 and ours[1] < 0.2  # and they mean something: whole vs cut
    assert model.predict(clips[:1])[0] == pytest.approx(ours[0], abs=1e-5)  # a batch scores each alone


def test_the_weights_are_checked(tmp_path: Path) -> None:
    found = packaged_file(SMART_TURN)
    assert found.name == "smart-turn-v3.2-cpu.onnx" and found.stat().st_size == SMART_TURN.size
    copy = tmp_path / "model.onnx"
    shutil.copyfile(found, copy)
    assert packaged_file(SMART_TURN, str(copy)) == copy
    with open(copy, "r+b") as f:  # same size, one byte changed
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundledModelError, match="sha256"):
        packaged_file(SMART_TURN, str(copy))
    copy.write_bytes(b"x" * 10)
    with pytest.raises(BundledModelError, match="10 bytes"):
        packaged_file(SMART_TURN, str(copy))


def test_a_missing_model_makes_semantic_mode_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HubError) as e:
        get_runner(str(tmp_path / "nothing.onnx")).check()
    assert e.value.code == "operator_unavailable" and "nothing.onnx" in e.value.message


async def test_questions_that_queue_while_the_model_runs_go_as_one_batch() -> None:
    runner = TurnRunner(max_batch=8)
    pcm = load_pcm16(SENTENCE.path)
    audios = [pcm, pcm[:int(len(pcm) * 0.55)]] * 3
    answers = await asyncio.gather(*(runner.submit(a) for a in audios))
    assert runner.calls == 6 and runner.batches <= 2  # the first may go alone; the rest queued behind it
    alone = runner.load().predict(audios[:2])
    assert np.allclose(answers, alone * 3, atol=1e-4), (answers, alone)


OPEN = clip("en_libri_1221-135766-0002")  # "Yet these thoughts affected Hester Prynne less with hope than ..."
OPEN_AT = 27840                            # after "affected" (1.74 s)


def tiny_en(pcm: np.ndarray) -> str:
    """The real tiny.en greedy reading of `pcm`, as a hub's speculative decode hands it back."""
    from faster_whisper import WhisperModel

    from asrhub.providers.models import resolve_ct2_model

    model = WhisperModel(str(resolve_ct2_model("bundled:tiny.en", provider="test")), device="cpu",
                         compute_type="int8", cpu_threads=1)
    segs, _ = model.transcribe(pcm.astype(np.float32) / 32768, language="en", beam_size=1, vad_filter=False,
                               without_timestamps=True, condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segs).strip()


def semantic_pipeline() -> Pipeline:
    """A pipeline in semantic turn mode at medium, the real turn model behind it."""
    return Pipeline(build_spec(AudioSpec(), VadOptions(), PipelineConfig(), turn=TurnOptions(mode="semantic")))


def watch(p: Pipeline) -> tuple[asyncio.Event, list[float | None], list[Item]]:
    """The pipeline's turn model answers, as they come (the event is set at each), and the items it hands
    on late (after an answer)."""
    assert p.turn is not None
    ep = p.turn.endpointer
    answered = asyncio.Event()
    answers: list[float | None] = []
    answer = ep.answer

    def spy(query_id: int, probability: float | None) -> list[Item]:
        answers.append(probability)
        out = answer(query_id, probability)
        answered.set()
        return out

    ep.answer = spy  # type: ignore[method-assign]
    late: list[Item] = []
    p.on_late = late.extend
    return answered, answers, late


async def turn_with_text(speech: np.ndarray, text: str) -> tuple[SpeechEnd, float | None, float | None]:
    """`speech` then silence at medium, every pause's speculative text `text`: the utterance's end, the model's
    first answer, and the silence (ms) at which the end was decided (None: at the model's answer)."""
    p = semantic_pipeline()
    answered, answers, late = watch(p)

    def push(pcm: np.ndarray) -> list[SpeechEnd]:
        items = p.push(pcm.tobytes())
        for it in items:
            if isinstance(it, PauseHint) and it.on_text is not None:
                it.on_text(text)  # the pause's speculative text
        return [it for it in items if isinstance(it, SpeechEnd)]

    ends = push(np.concatenate([speech, np.zeros(16 * 600, dtype=np.int16)]))
    await asyncio.wait_for(answered.wait(), 60)
    assert ends == [], ends                                          # nothing before the model's answer
    at_answer = [it for it in late if isinstance(it, SpeechEnd)]
    if at_answer:
        p.release()
        return at_answer[0], answers[0], None
    pushed = len(speech) + 16 * 600
    while not ends and pushed < len(speech) + 16 * 3000:
        ends = push(np.zeros(480, dtype=np.int16))
        pushed += 480
    p.release()
    assert ends, "no end within 3 s of silence"
    return ends[0], answers[0], (pushed - ends[0].offset) / 16


async def test_a_confident_answer_on_prose_left_open_ends_the_turn_only_at_late_text_ms() -> None:
    speech = load_pcm16(OPEN.path)[:OPEN_AT]
    text = tiny_en(np.concatenate([speech, np.zeros(1600, dtype=np.int16)]))
    assert unclosed(text), text                                    # "Yet these thoughts affected"
    end, p, silence_ms = await turn_with_text(speech, text)
    assert p is not None and p >= EAGERNESS["medium"].threshold, p  # sure it is finished ...
    late_ms = EAGERNESS["medium"].late_text_ms
    assert late_ms == 750 and end.reason == "turn" and end.turn_probability == p, end
    assert silence_ms is not None and late_ms <= silence_ms < late_ms + 60, silence_ms  # ... but not at once
    assert abs(end.offset - OPEN_AT) < 16 * 200


async def test_a_confident_answer_on_a_fragment_read_unformatted_ends_the_turn_at_once() -> None:
    """JFK's last clause as its own utterance, as after a cut at the pause before it: tiny.en reads it without
    capitals or punctuation ("ask what you can do for your country"), which says nothing about its end."""
    pcm = load_pcm16(clip("en_jfk").path)
    speech = pcm[122400:177600]                                    # from the pause before "ask what ..."
    text = tiny_en(np.concatenate([speech, np.zeros(1600, dtype=np.int16)]))
    assert text == text.lower() and not unclosed(text), text
    end, p, silence_ms = await turn_with_text(speech, text)
    assert p is not None and p >= EAGERNESS["medium"].threshold, p
    assert end.reason == "turn" and silence_ms is None, (end, silence_ms)  # at the model's answer


FINISHED = clip("en_ljspeech_LJ001-0008")  # "has never been surpassed.": P 0.96-0.97 at 100 ms of silence


@pytest.mark.parametrize("command", ["close", "flush"])
async def test_a_stop_before_the_pauses_text_keeps_the_models_answer(command: str) -> None:
    """A whole sentence and 1.5 s of silence at medium (max_silence 1.2 s; test_demo_turns streams such a file),
    and a stop (or flush) while the last pause's speculative decode is still running, as on a loaded machine:
    the model's confident answer there ends the turn where it was asked (`reason: turn`), not the silence
    received before the stop (`max_silence`: the reason depended on how fast the decode was). A pause inside
    the sentence gets its real tiny.en reading at once."""
    saved = turn_module.ANSWER_TIMEOUT_S
    turn_module.ANSWER_TIMEOUT_S = 600.0  # the decode "still running" must not time out on a loaded machine
    p = semantic_pipeline()
    try:
        assert p.turn is not None
        ep = p.turn.endpointer
        answered, answers, late = watch(p)
        speech = load_pcm16(FINISHED.path)
        last = last_voiced_end(speech)
        held: list[PauseHint] = []  # the sentence end's hint: its decode has not finished
        ends: list[SpeechEnd] = []

        def take(items: list[Item]) -> None:
            for it in items:
                if isinstance(it, PauseHint) and it.on_text is not None:
                    if it.offset < last - 16 * 300:  # inside the sentence
                        it.on_text(tiny_en(np.concatenate([speech[:it.offset], np.zeros(16 * 180, np.int16)])))
                    else:
                        held.append(it)
                elif isinstance(it, SpeechEnd):
                    ends.append(it)

        take(p.push(np.concatenate([speech, np.zeros(16 * 1500, dtype=np.int16)]).tobytes()))
        while True:  # until the model has answered at the sentence end
            news, late[:] = late[:], []
            take(news)
            if held and len(answers) >= ep.questions:
                break
            assert len(answers) < ep.questions, (answers, ends)  # an answer is still to come
            answered.clear()
            await asyncio.wait_for(answered.wait(), 60)
        assert len(held) == 1 and answers[-1] is not None, (held, answers)
        assert answers[-1] >= EAGERNESS["medium"].threshold, answers
        assert ends == [], ends                  # a confident answer waits for the pause's text ...
        take(p.close() if command == "close" else p.flush())
        assert [e.reason for e in ends] == ["turn"], ends  # ... not there at the stop: the answer stands
        assert ends[0].turn_probability == answers[-1]
        assert abs(ends[0].offset - held[0].offset) < 16 * 100
    finally:
        p.release()
        turn_module.ANSWER_TIMEOUT_S = saved
