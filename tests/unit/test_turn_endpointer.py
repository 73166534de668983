"""The turn endpointer's state machine (operators/turn.py), with a scripted VAD, a scripted turn model and a
scripted speculative text: when it asks, what it does with each answer and each text, and that decisions wait
for an answer while audio flows on.
The real model on real speech: tests/test_turn_speech.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from asrhub.core.audio import AudioChunk
from asrhub.core.commands import AudioSpec, TurnOptions, VadOptions, parse_start
from asrhub.core.config import PipelineConfig, TurnConfig
from asrhub.core.errors import HubError
from asrhub.operators.base import Item, PauseHint, SpeechEnd, SpeechStart
from asrhub.operators.endpoint import EndpointOptions
from asrhub.operators.pipeline import build_spec
from asrhub.operators.turn import (
    EAGERNESS,
    TurnEndpointer,
    TurnSettings,
    ends_a_sentence,
    trails_on,
    turn_options,
    unclosed,
)
from asrhub.operators.turn_model import WINDOW

FRAME = 480  # 30 ms


class LoudIsSpeech:
    """A frame is speech when it is not silent (the tests write 1000s for speech, 0s for silence)."""

    frame_samples = FRAME

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(np.abs(frame).max() > 0)

    def reset(self) -> None:
        return None


class Scripted:
    """Stands in for the model: records each question; the test answers them."""

    def __init__(self) -> None:
        self.questions: list[tuple[int, np.ndarray]] = []

    def __call__(self, query_id: int, audio: np.ndarray) -> None:
        self.questions.append((query_id, audio))

    @property
    def last(self) -> int:
        return self.questions[-1][0]


class Texts:
    """Stands in for the recogniser's speculative decode: records each pause it was told of."""

    def __init__(self) -> None:
        self.pauses: list[int] = []

    def __call__(self, pause_id: int) -> Callable[[str | None], None]:
        self.pauses.append(pause_id)
        return lambda text: None  # the tests hand texts to `heard` themselves


def make(turn: TurnSettings = TurnSettings(0.5, 210, 2010, 510),
         texts: Texts | None = None) -> tuple[TurnEndpointer, Scripted]:
    model = Scripted()
    return TurnEndpointer(LoudIsSpeech(), EndpointOptions(min_speech_ms=90, pre_roll_ms=300), turn, model,
                          texts), model


class Feed:
    def __init__(self, ep: TurnEndpointer) -> None:
        self.ep = ep
        self.offset = 0

    def __call__(self, speech_ms: int = 0, silence_ms: int = 0) -> list[Item]:
        samples = np.concatenate([np.full(speech_ms * 16, 1000, dtype=np.int16),
                                  np.zeros(silence_ms * 16, dtype=np.int16)])
        chunk = AudioChunk(samples, self.offset)
        self.offset += len(samples)
        return self.ep.push(chunk)


def markers(items: list[Item]) -> list[Item]:
    return [it for it in items if not isinstance(it, AudioChunk)]


def test_a_complete_turn_ends_at_the_first_question_at_the_last_voiced_frame() -> None:
    ep, model = make()
    feed = Feed(ep)
    out = markers(feed(speech_ms=990, silence_ms=3000))
    assert [type(m) for m in out] == [SpeechStart, PauseHint]
    assert len(model.questions) == 1                     # asked once at 210 ms; later frames wait
    qid, audio = model.questions[0]
    assert len(audio) == (990 + 210) * 16             # the utterance so far, its silence included
    ends = ep.answer(qid, 0.91)
    assert ends == [SpeechEnd(990 * 16, False, "turn", 0.91)]
    assert len(model.questions) == 1 and not ep.speaking


def test_an_unfinished_turn_is_asked_once_then_ends_at_max_silence() -> None:
    ep, model = make()
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=3000)
    out = ep.answer(model.last, 0.2)
    assert len(model.questions) == 1                     # the model's answer drifts as silence grows: asked once
    assert out == [SpeechEnd(990 * 16, False, "max_silence", 0.2)]


@pytest.mark.parametrize(("text", "reason", "at_ms"), [
    ("Yet these thoughts affected Hester Prynne less with hope than apprehension.", "turn", 990),
    ("And so, my fellow Americans?", "turn", 990),
    ("今天天气很好。", "turn", 990),
    ("He hoped there would be stew for dinner, turnips and carrots and", "max_silence", 990),
    ("She saw a cat in the...", "max_silence", 990),
    ("For a full hour he had paced up and down waiting, but he-", "max_silence", 990),
    (None, "silence", 990),  # no text: silence mode's rule (vad.silence_ms, here under the text step)
])
def test_the_text_at_text_silence_ends_a_doubted_turn_only_when_it_ends_a_sentence(
        text: str | None, reason: str, at_ms: int) -> None:
    texts = Texts()
    ep, model = make(texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=3000)
    assert texts.pauses and markers(ep.answer(model.last, 0.2)) == []  # doubted; the text step waits for the text
    out = ep.heard(texts.pauses[-1], text)
    assert out == [SpeechEnd(at_ms * 16, False, reason, 0.2)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("probability", "reason"), [(0.05, "max_silence"), (0.1, "turn"), (None, "turn")])
def test_a_sentence_end_is_vetoed_by_a_model_sure_the_speaker_goes_on(probability: float | None,
                                                                     reason: str) -> None:
    texts = Texts()
    ep, model = make(TurnSettings(0.9, 210, 2010, 510, 0.1), texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=3000)
    assert markers(ep.answer(model.last, probability)) == []  # not finished (or no answer): the text step waits
    out = ep.heard(texts.pauses[-1], "I would like to set up.")
    assert out == [SpeechEnd(990 * 16, False, reason, probability)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("probability", "ends_at_ms"), [(0.05, 750), (0.5, 510), (None, 510)])
def test_the_veto_lapses_at_late_text_ms(probability: float | None, ends_at_ms: int) -> None:
    texts = Texts()
    ep, model = make(TurnSettings(0.9, 210, 2010, 510, 0.1, late_text_ms=750), texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    ep.answer(model.last, probability)
    ep.heard(texts.pauses[-1], "I would like to set up an interview with you.")
    assert markers(feed(silence_ms=ends_at_ms - 240 - 60)) == []    # not before the step's frame
    out = markers(feed(silence_ms=90))
    assert out == [SpeechEnd(990 * 16, False, "turn", probability)]  # type: ignore[arg-type]


def mandarin_ready() -> tuple[TurnEndpointer, Scripted, Texts, Feed]:
    """threshold 0.9, Han threshold 0.97; 990 ms of speech, then 240 ms of silence (asked at 210 ms)."""
    texts = Texts()
    ep, model = make(TurnSettings(0.9, 210, 2010, 510, 0.1, han_threshold=0.97), texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    return ep, model, texts, feed


@pytest.mark.parametrize(("text", "reason"), [
    ("And so, my fellow Americans", "turn"),  # not Han: the answer stands
    (None, "turn"),                            # no text: the answer stands
    ("甚至出现交易", "turn"),                     # Mandarin: 0.93 is not sure enough at once; at the late step
])
def test_an_answer_between_the_thresholds_waits_for_the_texts_script(text: str | None, reason: str) -> None:
    ep, model, texts, feed = mandarin_ready()
    assert markers(ep.answer(model.last, 0.93)) == []             # waits for the text: decisions wait too
    assert [type(i) for i in feed(silence_ms=3000)] == [AudioChunk]
    out = markers(ep.heard(texts.pauses[-1], text))
    assert out == [SpeechEnd(990 * 16, False, reason, 0.93)]  # type: ignore[arg-type]


def test_a_sure_answer_ends_a_mandarin_turn_and_a_text_heard_first_decides_at_the_answer() -> None:
    ep, model, texts, feed = mandarin_ready()
    assert markers(ep.answer(model.last, 0.98)) == []            # waits for the pause's text
    assert ep.heard(texts.pauses[-1], "欢迎大家来体验达摩院推出的语音识别模型") == [SpeechEnd(990 * 16, False, "turn", 0.98)]
    feed(speech_ms=600, silence_ms=240)
    ep.heard(texts.pauses[-1], "欢迎大家来体验")
    assert markers(ep.answer(model.last, 0.93)) == []            # Han text already heard: not sure enough
    feed(speech_ms=600, silence_ms=240)
    ep.heard(texts.pauses[-1], "Welcome, everyone!")
    assert ep.answer(model.last, 0.93) == [SpeechEnd(2670 * 16, False, "turn", 0.93)]


@pytest.mark.parametrize(("text", "reason"), [
    ("Ask not what your country can do for", "max_silence"),   # a preposition that needs more words
    ("four queen of", "max_silence"),
    ("the cabbage juice changes color depending on how...", "max_silence"),
    ("And so, my fellow Americans,", "max_silence"),
    ("And so, my fellow Americans.", "turn"),
    ("1,0001 90210 0,1803", "turn"),                            # digits left open: the model's answer stands
])
def test_a_confident_answer_does_not_end_a_text_that_trails_on(text: str, reason: str) -> None:
    texts = Texts()
    ep, model = make(TurnSettings(0.9, 210, 2010, 510, 0.1), texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=3000)
    assert markers(ep.answer(model.last, 0.97)) == []
    out = markers(ep.heard(texts.pauses[-1], text))
    assert out == [SpeechEnd(990 * 16, False, reason, 0.97)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "ends_at_ms"), [
    ("Yet these thoughts affected", 750),                       # prose Whisper left open: at late_text_ms
    ("A gold ring will please most any girl. The long journey", 750),
    ("甚至出现交易", 750),                                         # Han, 0.95 under han_threshold 0.97
    ("Yet these thoughts affected Hester Prynne.", 240),       # a text that backs the answer: at once
    ("4. Queen of Clubs", 240),                                 # a name left open: at once
])
def test_a_confident_answer_its_text_does_not_back_ends_the_turn_at_late_text_ms(text: str,
                                                                                 ends_at_ms: int) -> None:
    texts = Texts()
    ep, model = make(TurnSettings(0.9, 210, 2010, 510, 0.1, late_text_ms=750, han_threshold=0.97), texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    ep.heard(texts.pauses[-1], text)
    out = markers(ep.answer(model.last, 0.95))
    if ends_at_ms > 240:
        assert out == [] and markers(feed(silence_ms=ends_at_ms - 240 - 60)) == []  # not before the step's frame
        out = markers(feed(silence_ms=90))
    assert out == [SpeechEnd(990 * 16, False, "turn", 0.95)]  # type: ignore[arg-type]


def test_an_unbacked_answer_without_late_text_ms_ends_the_turn_at_text_silence_ms() -> None:
    texts = Texts()
    ep, model = make(TurnSettings(0.98, 150, 2500, 800), texts=texts)  # `low`
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=180)
    ep.heard(texts.pauses[-1], "Yet these thoughts affected")
    assert markers(ep.answer(model.last, 0.99)) == []
    assert markers(feed(silence_ms=800 - 180 - 60)) == []
    assert markers(feed(silence_ms=90)) == [SpeechEnd(990 * 16, False, "turn", 0.99)]  # type: ignore[arg-type]


def test_what_reads_as_prose_left_open() -> None:
    assert unclosed("Yet these thoughts affected") and unclosed("Anger is something that can be really")
    assert not unclosed("Yet these thoughts affected Hester Prynne.") and not unclosed("4. Queen of Clubs")
    assert not unclosed("1,0001 90210 0,1803") and not unclosed("甚至出现交易") and not unclosed(None)
    assert not unclosed("ask what you can do for your country")  # a fragment read unformatted (after a cut)


def paused_at_120_ms_with_silence_mode_at_450() -> tuple[TurnEndpointer, Scripted, Texts, Feed]:
    """medium-like settings (asked at 90 ms, text step 300, veto 0.1, max 1500) over vad.silence_ms 450; 990 ms
    of speech, then 120 ms of silence: the model asked, the pause's text not yet heard."""
    texts, model = Texts(), Scripted()
    ep = TurnEndpointer(LoudIsSpeech(), EndpointOptions(min_speech_ms=90, silence_ms=450, pre_roll_ms=300),
                        TurnSettings(0.9, 90, 1500, 300, 0.1), model, texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=120)
    return ep, model, texts, feed


@pytest.mark.parametrize(("probability", "reason"), [(0.5, "silence"), (None, "silence"), (0.05, "max_silence")])
def test_a_pause_without_text_ends_at_silence_modes_silence_unless_vetoed(probability: float | None,
                                                                          reason: str) -> None:
    ep, model, texts, feed = paused_at_120_ms_with_silence_mode_at_450()
    assert markers(ep.answer(model.last, probability)) == []
    assert ep.heard(texts.pauses[-1], None) == []        # no text (no speculation, or it failed): nothing yet
    assert markers(feed(silence_ms=300)) == []           # 420 ms: past the text step, before silence mode's 450
    out = markers(feed(silence_ms=1200))
    assert out == [SpeechEnd(990 * 16, False, reason, probability)]  # type: ignore[arg-type]


def test_a_text_that_never_comes_ends_the_pause_when_its_wait_gives_up() -> None:
    ep, model, texts, feed = paused_at_120_ms_with_silence_mode_at_450()
    ep.answer(model.last, 0.5)
    assert markers(feed(silence_ms=900)) == []           # the text step waits for the text; decisions wait too
    out = ep.heard(texts.pauses[-1], None)                # the wait's timer: no text
    assert markers(out) == [SpeechEnd(990 * 16, False, "silence", 0.5)]


def test_the_veto_is_the_answer_at_this_pause_not_an_earlier_one() -> None:
    texts = Texts()
    ep, model = make(TurnSettings(0.9, 210, 2010, 510, 0.1), texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    ep.answer(model.last, 0.5)                           # this pause: unsure
    feed(speech_ms=300, silence_ms=240)                  # speech resumed: a new pause, its question unanswered
    ep.answer(model.last, None)
    ep.heard(texts.pauses[-1], "The end.")
    assert markers(feed(silence_ms=300)) == [SpeechEnd(1530 * 16, False, "turn", 0.5)]


def test_a_text_heard_before_the_text_step_is_read_there_and_a_stale_one_is_not() -> None:
    texts = Texts()
    ep, model = make(texts=texts)
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    ep.answer(model.last, 0.2)
    stale = texts.pauses[-1]
    feed(speech_ms=300, silence_ms=240)                  # speech resumed: a new pause
    assert ep.heard(stale, "The end.") == []
    ep.heard(texts.pauses[-1], "The end.")
    ep.answer(model.last, 0.2)
    assert markers(feed(silence_ms=300)) == [SpeechEnd(1530 * 16, False, "turn", 0.2)]


def test_what_reads_as_a_finished_sentence() -> None:
    assert ends_a_sentence("It is done.") and ends_a_sentence('He said "go."') and ends_a_sentence("好吗？")
    assert not ends_a_sentence("It is...") and not ends_a_sentence("It is…") and not ends_a_sentence("It is -")
    assert not ends_a_sentence("and then,") and not ends_a_sentence("") and not ends_a_sentence(None)
    assert trails_on("and then,") and trails_on("for Queen of") and trails_on("how...") and trails_on("甚至，")
    assert not trails_on("I think so.") and not trails_on("What for?") and not trails_on("") and not trails_on(None)


def test_speech_that_resumes_keeps_the_utterance_open_and_makes_nothing_of_the_answer() -> None:
    ep, model = make()
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    first = model.last
    assert markers(feed(speech_ms=600)) == []            # waits for the answer: no decision yet
    assert markers(ep.answer(first, 0.3)) == []          # not finished; the speech after it goes on
    assert ep.speaking
    assert ep.answer(first, 0.99) == []                  # an answer to an old question is stale
    assert markers(feed(silence_ms=300)) == [PauseHint(1830 * 16)]
    assert model.last != first
    assert ep.answer(model.last, 0.8) == [SpeechEnd(1830 * 16, False, "turn", 0.8)]


def test_a_finished_answer_ends_the_utterance_where_it_was_asked_and_the_next_speech_opens_another() -> None:
    ep, model = make()
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    feed(speech_ms=600)                                  # the next sentence, heard while the model thinks
    out = markers(ep.answer(model.last, 0.7))
    assert out[0] == SpeechEnd(990 * 16, False, "turn", 0.7)
    assert isinstance(out[1], SpeechStart) and out[1].offset == 1230 * 16


def test_decisions_wait_for_the_answer_while_the_audio_flows_on() -> None:
    ep, model = make()
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=240)
    items = feed(silence_ms=5000)                        # past max_silence: still no decision
    assert [type(i) for i in items] == [AudioChunk]
    assert ep.speaking and len(model.questions) == 1


def test_no_answer_counts_as_not_finished() -> None:
    ep, model = make(TurnSettings(0.5, 210, 500, 300))
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=1000)
    assert ep.answer(model.last, None) == [SpeechEnd(990 * 16, False, "max_silence", None)]
    assert len(model.questions) == 1


def test_flush_ends_the_utterance_at_once_and_the_pending_answer_is_dropped() -> None:
    ep, model = make()
    feed = Feed(ep)
    feed(speech_ms=990, silence_ms=600)
    out = ep.flush(feed.offset)
    assert out == [SpeechEnd(990 * 16 + 210 * 16, True, "flush", None)]  # keeps min_silence_ms of tail
    assert ep.answer(model.last, 0.99) == []
    assert len(model.questions) == 1


def test_a_question_carries_at_most_the_last_8_s() -> None:
    ep, model = make()
    Feed(ep)(speech_ms=10_020, silence_ms=300)
    audio = model.questions[0][1]
    assert len(audio) == WINDOW
    assert audio[-210 * 16:].max() == 0 and audio[: -210 * 16].min() == 1000


def test_eagerness_maps_to_threshold_and_timing() -> None:
    high, medium, low = EAGERNESS["high"], EAGERNESS["medium"], EAGERNESS["low"]
    assert EAGERNESS["auto"] == medium
    assert high.threshold <= medium.threshold < low.threshold
    assert high.min_silence_ms <= medium.min_silence_ms <= low.min_silence_ms
    assert high.text_silence_ms < medium.text_silence_ms < low.text_silence_ms
    assert high.text_threshold < medium.text_threshold  # high trusts the text more
    assert high.max_silence_ms < medium.max_silence_ms < low.max_silence_ms
    assert high.late_text_ms is not None and medium.late_text_ms is not None and low.late_text_ms is None
    assert high.text_silence_ms < high.late_text_ms < high.max_silence_ms  # the veto lapses before the end
    assert medium.text_silence_ms < medium.late_text_ms < medium.max_silence_ms
    assert high.han_threshold is not None and medium.han_threshold is not None
    assert high.threshold < high.han_threshold <= medium.han_threshold  # Mandarin needs a surer model
    assert turn_options("low", 100, None) == TurnSettings(low.threshold, 100, low.max_silence_ms, low.text_silence_ms,
                                                          low.text_threshold)
    assert turn_options("medium", 900, 1000) == TurnSettings(medium.threshold, 900, 1000, 900,  # steps within
                                                             medium.text_threshold, 900, medium.han_threshold)


# -- the start command and the config ----------------------------------------------------------------
@pytest.mark.parametrize(("turn", "field"), [
    ({"mode": "smart"}, "turn.mode"),
    ({"eagerness": "eager"}, "turn.eagerness"),
    ({"min_silence_ms": "200"}, "turn.min_silence_ms"),
    ({"max_silence_ms": 20}, "turn.max_silence_ms"),
    ({"min_silence_ms": 900, "max_silence_ms": 800}, "min_silence_ms (900) must be below max_silence_ms"),
    ({"mode": "semantic", "threshold": 0.5}, "unknown field 'turn.threshold'"),
])
def test_a_bad_turn_is_an_invalid_command_naming_the_field(turn: dict[str, object], field: str) -> None:
    with pytest.raises(HubError) as e:
        parse_start({"turn": turn})
    assert e.value.code == "invalid_command" and field in e.value.message, e.value.message


def test_the_session_turn_over_the_config_default() -> None:
    cfg = PipelineConfig(turn=TurnConfig(mode="semantic", eagerness="low", max_silence_ms=2500))
    spec = build_spec(AudioSpec(), VadOptions(), cfg)
    assert spec.turn is not None and spec.turn.options == TurnSettings(0.98, 150, 2500, 800)
    spec = build_spec(AudioSpec(), VadOptions(), cfg, turn=TurnOptions(eagerness="high", min_silence_ms=100))
    assert spec.turn is not None and spec.turn.options == TurnSettings(0.9, 100, 2500, 200, 0.05, 750, 0.95)
    assert build_spec(AudioSpec(), VadOptions(), cfg, turn=TurnOptions(mode="silence")).turn is None
    assert build_spec(AudioSpec(), VadOptions(), PipelineConfig()).turn is None  # silence by default
    # a session without the VAD (push-to-talk, Realtime manual commit) is not refused for the config's default
    assert build_spec(AudioSpec(), VadOptions(enabled=False), cfg).turn is None


@pytest.mark.parametrize(("turn", "vad", "words"), [
    (TurnOptions(min_silence_ms=300), VadOptions(), "turn.min_silence_ms applies to turn.mode 'semantic' only"),
    (TurnOptions(mode="semantic"), VadOptions(enabled=False), "needs the VAD"),
    (TurnOptions(mode="semantic", min_silence_ms=2500), VadOptions(), "turn.min_silence_ms (2500) must be below"),
])
def test_turn_settings_that_cannot_work_are_refused(turn: TurnOptions, vad: VadOptions, words: str) -> None:
    with pytest.raises(HubError) as e:
        build_spec(AudioSpec(), vad, PipelineConfig(), turn=turn)
    assert e.value.code == "invalid_command" and words in e.value.message, e.value.message


def test_the_speculative_final_starts_at_180_ms_of_silence_before_a_later_first_question() -> None:
    ep, model = make(TurnSettings(0.5, 600, 2010, 600))
    feed = Feed(ep)
    out = markers(feed(speech_ms=990, silence_ms=300))
    assert [type(m) for m in out] == [SpeechStart, PauseHint] and out[1] == PauseHint(990 * 16)
    assert model.questions == []                         # the model is asked at 600 ms
    assert markers(feed(silence_ms=330)) == [] and len(model.questions) == 1
