"""The answer to a resume (docs/PROTOCOL.md "Resume"): `session.started {resumed: true, audio_from_ms}`,
unnumbered (seq 0, not in the session's log), the first thing the resumed connection carries.

`audio_from_ms` is how much audio the session has received: the end of its audio timeline. A client
that holds the audio it sent since the last final sends it again from there, so audio a dying
connection (or a dying relay node, or a request answered 5xx) had taken but not delivered is not lost,
and audio that did arrive is not sent twice. In a cluster the owner answers only once it has applied
every earlier message of its inbox (`cluster/node.py`), so what a dead relay delivered is counted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..core.audio import samples_to_ms
from ..core.events import AudioFormat, SessionStarted
from ..store.sessions.selectors import select_session
from .streams import effective_config

if TYPE_CHECKING:
    from .service import SessionService


def resume_answer(service: SessionService, session_id: str) -> SessionStarted | None:
    """The answer to a resume of a session held here, as it stands now; None: not held here."""
    s = service.plane(session_id)
    rec = select_session(service.state, session_id)
    if s is None or rec is None or s.pipeline is None:  # (ended: its plane is kept a while, its pipeline gone)
        return None
    a = s.start.audio
    return SessionStarted(session_id=session_id, seq=0, ts=time.time(), provider=rec.provider,
                          language=s.start.language or rec.language,
                          audio=AudioFormat(encoding=a.encoding, sample_rate=a.sample_rate, channels=a.channels),
                          config=effective_config(s, service.config), resumed=True,
                          audio_from_ms=samples_to_ms(s.audio_samples))
