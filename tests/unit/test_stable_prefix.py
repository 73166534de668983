"""Issue 24 item 3: the functions that keep text from contradicting itself. `carry_stable` makes a text start
with the stable text already shown; a Realtime item's deltas always concatenate to its transcript."""

from __future__ import annotations

import pytest

from asrhub.api.realtime_items import Item
from asrhub.providers.text_guard import carry_stable


@pytest.mark.parametrize("stable,text,expected", [
    # the case: the final keeps the stable words as shown, and its own punctuation after them
    ("printing in the only sense", "Printing, in the only sense, with which", "printing in the only sense, with which"),
    ("Printing in the", "Printing in the only sense", "Printing in the only sense"),  # already a prefix
    ("the cat sad", "The cat sat on the mat.", "the cat sad on the mat."),          # a word the final changed
    ("the cat", "the dog ran away", "the cat ran away"),
    ("a b c", "a x b c d", "a b c d"),                                              # a word the final added
    ("the cat sat", "", "the cat sat"),                                             # a final without text
    ("", "anything", "anything"),
])
def test_carry_stable(stable: str, text: str, expected: str) -> None:
    out = carry_stable(stable, text)
    assert out == expected and out.startswith(stable)


def test_item_deltas_concatenate_to_the_transcript_even_when_the_final_strays() -> None:
    item = Item("item_1", parts=[(1, "u1"), (1, "u2")], committed=True)
    sent: list[str] = []
    item.stable[(1, "u1")] = "printing in the"
    sent.append(item.next_delta())
    item.stable[(1, "u1")] = "printing in the only sense"
    sent.append(item.next_delta())
    item.finals[(1, "u1")] = "Printing, in the only sense, with which"  # does not keep the promise
    sent.append(item.next_delta())  # nothing: the settled text no longer extends what was sent
    item.finals[(1, "u2")] = "we are concerned."
    piece, transcript = item.close()
    sent.append(piece)
    assert "".join(sent) == transcript == "printing in the only sense, with which we are concerned."
    assert item.done and not item.live
