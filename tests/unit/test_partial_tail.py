"""Tail decodes of partials (issue 23 item 4): a decode of the utterance's last seconds, prompted with the
stable text, joined onto it by `stitch`. The tails are tiny.en's, recorded from bench_stream_cost runs on
the dev clips (the stable text's last words, then what the tail decode wrote)."""

from __future__ import annotations

import pytest

from asrhub.providers.streaming import stitch

STABLE = "He hoped there would be stew for dinner, turnips and".split()


@pytest.mark.parametrize(("stable", "tail", "joined"), [
    # the tail went on where the stable text ended (its window started at the stable text's last word)
    (STABLE, "carrots and bruised potatoes and fat mutton pieces.",
     "He hoped there would be stew for dinner, turnips and carrots and bruised potatoes and fat mutton pieces."),
    ("I will say nothing of my".split(), "antecedents. Nor of the circumstances",
     "I will say nothing of my antecedents. Nor of the circumstances"),
    # the tail repeats the stable text's last words (case and punctuation aside): they are not said twice
    (STABLE, "for dinner turnips and carrots and", "He hoped there would be stew for dinner, turnips and carrots and"),
    (STABLE, "And carrots", "He hoped there would be stew for dinner, turnips and carrots"),
    # a first word cut by the window ("-ner") before the repeat
    (STABLE, "-ner, turnips and carrots", "He hoped there would be stew for dinner, turnips and carrots"),
])
def test_a_tail_is_joined_onto_the_stable_text(stable: list[str], tail: str, joined: str) -> None:
    assert " ".join(stitch(stable, tail.split())) == joined


def test_a_word_said_twice_inside_the_tail_is_kept() -> None:
    # one repeated word counts only at the tail's very start; deeper in, a single match is speech
    assert stitch("it was not so much the loss".split(), "of the cotton itself".split()) == \
        "it was not so much the loss of the cotton itself".split()
