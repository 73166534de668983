"""agreement.read_after: an opening some hypothesis read a word or two before is not promised yet."""

from __future__ import annotations

import pytest

from asrhub.providers.agreement import read_after


@pytest.mark.parametrize(("opening", "openings", "contested"), [
    # the LJ001-0003 partials (tiny.en): "For" read in some, dropped in others
    ("Although the Chinese", ["for although the chan", "Although the Chinese took"], True),
    ("Although the Chinese", ["For although the Chinese", "Although the Chinese took"], True),
    ("Although", ["So, although we"], True),  # two words before it ("So," "although")
    # the longer reading itself, or hypotheses that agree, contest nothing
    ("For although the Chinese", ["for although the chan", "Although the Chinese took"], False),
    ("Although the Chinese", ["Although the Chinese took", "although, the chinese"], False),
    # a word three places in is not a dropped opening; nor is another reading of the first word
    ("Although the", ["and so we although the"], False),
    ("Although the", ["All though the"], False),
    ("", ["For although"], False),
])
def test_read_after(opening: str, openings: list[str], contested: bool) -> None:
    assert read_after(opening.split(), [o.split()[:4] for o in openings]) is contested
