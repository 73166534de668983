"""Routing by detected language in the sessions slice (DESIGN §5): the reducer owns which utterance waits
for its language, the last answer and the provider the session moved to; pure, like every reducer."""

from __future__ import annotations

from typing import Any

from asrhub.core.events import ProviderSwitched
from asrhub.store.sessions import actions as A
from asrhub.store.sessions.reducer import sessions_reducer


def run(*actions: Any) -> Any:
    state = sessions_reducer.initial_state
    for a in actions:
        state = sessions_reducer(state, a)
    return state["s1"] if "s1" in state else None


def test_an_utterance_waits_for_its_language_from_due_to_answer() -> None:
    created = A.created(A.Created("s1", "faster_whisper", "websocket", None, 1.0, detect=True))
    due = A.detect_due(A.DetectDue("s1", "u1", 2.0))
    asked = A.detect_requested(A.DetectRequested("s1", "u1", 0, 32000))
    answered = A.language_detected(A.LanguageDetected("s1", "u1", "zh", 0.97))
    rec = run(created, due)
    assert rec.detect and rec.detect_due == "u1" and rec.detect_s == 2.0 and rec.awaits_language("u1")
    rec = run(created, due, asked)
    assert rec.detect_due is None and rec.detecting == "u1" and rec.awaits_language("u1")
    assert not rec.awaits_language("u2")
    rec = run(created, due, asked, answered)
    assert not rec.awaits_language("u1") and (rec.language, rec.language_probability) == ("zh", 0.97)
    ev = ProviderSwitched.model_validate({"session_id": "s1", "from": "faster_whisper", "to": "whisper_multi",
                                          "reason": "language zh (p=0.97)"})
    rec = run(created, due, asked, answered, A.language_routed(A.LanguageRouted("s1", ev, "whisper_multi")))
    assert rec.provider == "whisper_multi"


def test_no_answer_keeps_the_last_one_and_a_session_without_detection_ignores_due() -> None:
    created = A.created(A.Created("s1", "faster_whisper", "websocket", None, 1.0, detect=True))
    first = [A.detect_due(A.DetectDue("s1", "u1", 2.0)), A.detect_requested(A.DetectRequested("s1", "u1", 0, 1)),
             A.language_detected(A.LanguageDetected("s1", "u1", "en", 0.99))]
    none = [A.detect_due(A.DetectDue("s1", "u2", 2.0)), A.detect_requested(A.DetectRequested("s1", "u2", 0, 1)),
            A.language_detected(A.LanguageDetected("s1", "u2", None, 0.4))]
    rec = run(created, *first, *none)
    assert (rec.language, rec.language_probability) == ("en", 0.99)
    assert rec.detecting is None and rec.detect_due is None
    plain = A.created(A.Created("s1", "faster_whisper", "websocket", None, 1.0))
    rec = run(plain, A.detect_due(A.DetectDue("s1", "u1", 2.0)))
    assert not rec.detect and rec.detect_due is None and not rec.awaits_language("u1")
