"""A Realtime conversation item's text: which hub utterances it is made of, and the deltas and the one
`...completed` it is sent as (PROTOCOL §7).

The deltas of an item concatenate to its transcript by construction: a delta is only ever the growth of
text that is settled (the utterances' finals, then the open utterance's stable text, a prefix every later
text of it starts with); the last delta, sent right before `...completed`, is the rest of the transcript.
Should a provider ever break the stable-text promise, the transcript is made to start with what was
already sent (`carry_stable`), so the two can still never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..providers.text_guard import carry_stable

Part = tuple[int, str]  # (hub run serial, utterance id): one hub utterance of an item


@dataclass(eq=False)
class Item:
    id: str
    parts: list[Part] = field(default_factory=list)
    audio_s: float = 0.0       # the item's audio (the `usage.seconds` of its `...completed`)
    committed: bool = False    # `input_audio_buffer.committed` went out: its text may follow
    dropped: bool = False      # cleared: nothing more is sent for it
    done: bool = False         # `...completed` went out
    emitted: str = ""          # text sent as deltas so far
    stable: dict[Part, str] = field(default_factory=dict)  # the open utterances' stable text
    finals: dict[Part, str] = field(default_factory=dict)  # the utterances' final text

    @property
    def live(self) -> bool:
        return not (self.dropped or self.done)

    def finished(self) -> bool:
        """Every utterance of the item has its final (an utterance without text has none: see
        `transcript(assume_empty=True)`)."""
        return all(p in self.finals for p in self.parts)

    def settled(self) -> str:
        """The text nothing will take back: the finals in order, then the first open utterance's stable text."""
        texts: list[str] = []
        for p in self.parts:
            if p in self.finals:
                texts.append(self.finals[p])
            else:
                texts.append(self.stable.get(p, ""))
                break
        return " ".join(t for t in texts if t)

    def next_delta(self) -> str:
        """The growth of the settled text since the last delta ("" when none)."""
        text = self.settled()
        if len(text) <= len(self.emitted) or not text.startswith(self.emitted):
            return ""
        piece, self.emitted = text[len(self.emitted):], text
        return piece

    def close(self) -> tuple[str, str]:
        """(last delta, transcript) for `...completed`; utterances without a final have no text."""
        transcript = carry_stable(self.emitted, " ".join(t for p in self.parts if (t := self.finals.get(p, ""))))
        piece, self.emitted = transcript[len(self.emitted):], transcript
        self.done = True
        return piece, transcript
