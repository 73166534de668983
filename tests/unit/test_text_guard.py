"""The text guards (providers/text_guard.py) in every script: loops on characters as well as words, a whole
utterance said twice, and what Whisper writes on non-speech in English, Chinese, Japanese and Korean. The same
guards on real audio with the real models: tests/test_guards_speech.py."""

from __future__ import annotations

import pytest

from asrhub.providers.base import Result, Segment, TranscribeOptions
from asrhub.providers.text_guard import (
    collapse_loops,
    drop_unsure_tail,
    echoes,
    loops,
    non_speech_phrase,
    non_speech_tail,
    one_copy,
    self_repeat,
    tidy,
    tokens,
)


def test_tokens_are_words_where_words_are_spaced_and_characters_where_not() -> None:
    assert tokens("He's here, 10 times.") == ["he's", "here", "10", "times"]
    assert tokens("今天天气很好。") == ["今", "天", "天", "气", "很", "好"]
    assert tokens("東京タワー") == ["東", "京", "タ", "ワ", "ー"]


@pytest.mark.parametrize(("text", "loop"), [
    ("he's, he's, he's, he's", True),
    ("a b a b a b", True),
    ("作词作曲作曲作曲作曲作曲作曲", True),        # the song clip's credits: a character loop with no spaces
    ("谢谢谢谢谢谢", True),
    ("哈哈哈哈哈", True),
    ("ฉันฉันฉันฉัน", True),                      # Thai, unspaced
    ("哈哈哈", False),                            # three of one character is still speech
    ("好好好", False),
    ("ask not what your country can do for you, ask what you can do", False),
    ("今天天气很好", False),
])
def test_loops_in_every_script(text: str, loop: bool) -> None:
    assert loops(text) is loop


def test_a_loop_collapses_to_one_copy() -> None:
    assert collapse_loops("作词作曲作曲作曲作曲") == "作词作曲"
    assert collapse_loops("and the the the the end") == "and the end"


@pytest.mark.parametrize(("text", "once"), [
    ("in 1813. In 1813.", "in 1813."),
    ("8. The Press Yard. 8. The Press", "8. The Press Yard."),
    ("Seven of clubs. Seven of clubs.", "Seven of clubs."),
    ("基地里严重渗水基地里严重渗水", "基地里严重渗水"),
])
def test_a_whole_utterance_said_twice(text: str, once: str) -> None:
    assert self_repeat(text) and one_copy(text) == once


@pytest.mark.parametrize("text", ["no no", "bye bye", "go forward ten meters", "the cat sat on the mat",
                                  "It was. It was not.", "谢谢", "今天天气很好"])
def test_what_is_not_a_self_repeat(text: str) -> None:
    assert not self_repeat(text)


@pytest.mark.parametrize(("text", "non_speech"), [
    ("Thank you.", True), ("Thanks for watching!", True), ("字幕由Amara.org社群提供", True), ("谢谢观看", True),
    ("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", True), ("作词", True), ("ご視聴ありがとうございました", True),
    ("시청해주셔서 감사합니다", True),
    ("Thank you, John.", False), ("今天天气很好", False), ("这首歌的作曲是谁", False),
])
def test_non_speech_phrases_in_every_language(text: str, non_speech: bool) -> None:
    assert non_speech_phrase(text) is non_speech


def test_credits_after_the_words_are_a_tail_but_one_such_word_in_a_sentence_is_not() -> None:
    assert non_speech_tail("我们去旗舰店作词作曲作曲") == len("作词作曲作曲")
    assert non_speech_tail("好的。作词：作曲：") == len("作词：作曲：")
    assert non_speech_tail("这首歌的作曲") == 0 and non_speech_tail("今天天气很好。") == 0


def test_an_unsure_last_segment_of_non_speech_is_dropped_a_sure_one_stands() -> None:
    speech = Segment(0.0, 2.0, "今天天气很好。", avg_logprob=-0.3, no_speech_prob=0.01)
    unsure = Segment(2.0, 4.0, "谢谢观看。", avg_logprob=-1.2, no_speech_prob=0.5)
    sure = Segment(2.0, 4.0, "谢谢观看。", avg_logprob=-0.2, no_speech_prob=0.01)
    r = drop_unsure_tail(Result(text="今天天气很好。谢谢观看。", segments=[speech, unsure]))
    assert r.text == "今天天气很好。" and r.segments == [speech]
    r = drop_unsure_tail(Result(text="今天天气很好。谢谢观看。", segments=[speech, sure]))
    assert r.text == "今天天气很好。谢谢观看。"


def test_tidy_cuts_what_a_second_decode_still_holds() -> None:
    r = Result(text="Seven of clubs. Seven of clubs.")
    tidy(r, TranscribeOptions())
    assert r.text == "Seven of clubs."
    r = Result(text="Seven of clubs. Seven of clubs.")
    tidy(r, TranscribeOptions(prefix="Seven of"))  # with a forced prefix the stream judges the repeat
    assert r.text == "Seven of clubs. Seven of clubs."
    r = Result(text="基地里严重渗水作词作曲作曲作曲")
    tidy(r, TranscribeOptions())
    assert r.text == "基地里严重渗水"


@pytest.mark.parametrize(("text", "prompt", "echo"), [
    ("中间协会分析", "广州市佛地产中间协会分析", True),      # base over the music after the words (issue 23 item 3)
    ("协会中间协会分析", "广州市佛地产中间协会分析", True),
    ("甚至出现交易几乎停滞的情况", "广州市房地产中介协会分析", False),
    ("第二句话说的是协会的事情", "广州市房地产中介协会分析", False),  # one shared pair of characters is no echo
    ("The grass and bushes were", "It rained. The grass and bushes were wet with dew.", True),
])
def test_echoes_of_the_prompt_in_every_script(text: str, prompt: str, echo: bool) -> None:
    assert echoes(text, prompt) is echo
