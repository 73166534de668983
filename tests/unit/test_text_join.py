"""providers.text_join: streamed text in scripts without spaces is joined as the offline decode writes it."""

from __future__ import annotations

from asrhub.providers.text_join import join_words


def test_latin_words_are_joined_with_one_space() -> None:
    assert join_words(["And", " so,", "my ", "", "fellow Americans"]) == "And so, my fellow Americans"


def test_cjk_pieces_are_joined_with_nothing() -> None:
    assert join_words(["广州市", "佛地产", "中间协会分析。"]) == "广州市佛地产中间协会分析。"
    assert join_words(["今日は", "いい天気", "ですね"]) == "今日はいい天気ですね"
    assert join_words(["สวัสดี", "ครับ"]) == "สวัสดีครับ"
    assert join_words(["他说", "，", "好"]) == "他说，好"


def test_mixed_scripts_keep_a_space_at_the_script_boundary() -> None:
    assert join_words(["我用", "iPhone", "拍的"]) == "我用 iPhone 拍的"
    assert join_words(["GPU", "很快"]) == "GPU 很快"
