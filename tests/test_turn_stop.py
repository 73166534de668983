"""A `stop` in semantic turn mode while the turn model's answer at the last pause is still to come (a busy
machine): the session service waits for it before closing the pipeline, so the turn ends as the model said
(`reason: turn`, at the pause) and not as the silence received before the stop made it (`max_silence`).

Real speech (LJ001-0008, "has never been surpassed.", P 0.96-0.97 at 100 ms of silence) and 1.5 s of silence
(more than medium's max_silence_ms, 1.2 s), the real Smart Turn model; the provider is the scripted one (no
speculative text: the pause's text is None at once, which leaves the model's answer as it is). The answer at
the sentence end is held until the stop has been handled, then handed on: events, no sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from asrhub.core.commands import parse_start
from asrhub.core.config import parse_config
from asrhub.core.events import Event, SpeechEnded
from asrhub.engine.scheduler import Scheduler
from asrhub.engine.service import SessionService
from asrhub.operators import turn as turn_module
from asrhub.operators.turn import EAGERNESS
from asrhub.providers.registry import ProviderSet
from asrhub.store.sessions.selectors import select_session
from asrhub.store.sessions.state import SessionState
from tests.support import clip, last_voiced_end, load_pcm16

FINISHED = clip("en_ljspeech_LJ001-0008")
TAIL_MS = 1500


class HeldAnswers:
    """The real model's answers; the one asked at the sentence's end is handed on only when the test says."""

    def __init__(self, runner: Any, hold: Any) -> None:
        self.runner = runner
        self.hold = hold                      # () -> bool: hold the question asked now
        self.asked = asyncio.Event()          # the held question was asked
        self.held: list[tuple[asyncio.Future[float], asyncio.Future[float]]] = []

    def submit(self, audio: np.ndarray) -> asyncio.Future[float]:
        real = self.runner.submit(audio)
        if not self.hold():
            return real  # type: ignore[no-any-return]
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.held.append((real, fut))
        self.asked.set()
        return fut

    async def release(self) -> list[float]:
        out = []
        for real, fut in self.held:
            p = await real
            out.append(p)
            fut.set_result(p)
        return out


async def test_a_stop_waits_for_the_models_answer_at_the_last_pause() -> None:
    saved = turn_module.ANSWER_TIMEOUT_S
    turn_module.ANSWER_TIMEOUT_S = 600.0  # the held answer must not time out on a loaded machine
    cfg = parse_config({"providers": {"default": "a", "fallback": ["a"], "timeout_s": 60,
                                      "instances": {"a": {"type": "tests.fixtures.scripted:ScriptedProvider"}}}})
    svc = SessionService(cfg, ProviderSet(cfg.providers, Scheduler(1)))
    try:
        await svc.providers.load()
        svc.report_health(svc.providers.providers.values())
        s = svc.start_session(parse_start({"audio": {"encoding": "pcm_s16le", "sample_rate": 16000},
                                           "turn": {"mode": "semantic", "eagerness": "medium"}}), "test")
        assert s.pipeline is not None and s.pipeline.turn is not None
        stage = s.pipeline.turn
        speech = load_pcm16(FINISHED.path)
        last = last_voiced_end(speech)
        held = HeldAnswers(stage.runner, lambda: stage.endpointer._last_voiced_end >= last - 16 * 100)
        stage.runner = held  # type: ignore[assignment]
        got: list[Event] = []
        ended = asyncio.Event()

        async def read() -> None:
            async for ev in svc.events(s.id):
                got.append(ev)
                if ev.type == "session.ended":
                    ended.set()
                    return

        reader = asyncio.create_task(read())
        pcm = np.concatenate([speech, np.zeros(16 * TAIL_MS, dtype=np.int16)])
        for i in range(0, len(pcm), 1600):  # 100 ms messages
            svc.push_audio(s.id, pcm[i:i + 1600].tobytes())
        await asyncio.wait_for(held.asked.wait(), 120)  # the earlier pauses' answers came; the last one waits
        svc.stop(s.id)
        assert select_session(svc.state, s.id).state == SessionState.finalizing
        assert not ended.is_set()
        answers = await held.release()
        await asyncio.wait_for(ended.wait(), 120)
        await reader
        assert answers and answers[-1] >= EAGERNESS["medium"].threshold, answers
        ends = [e for e in got if isinstance(e, SpeechEnded)]
        assert [e.reason for e in ends][-1:] == ["turn"], ends  # before: max_silence (1.5 s received)
        assert ends[-1].turn_probability == round(answers[-1], 4)
        assert abs(ends[-1].offset_ms * 16 - last) < 16 * 100
        finals = [e for e in got if e.type == "transcript.final"]
        assert len(finals) == len(ends) and finals[-1].end_of_turn is True, finals  # type: ignore[attr-defined]
        assert got[-1].reason == "stop"  # type: ignore[attr-defined]
    finally:
        turn_module.ANSWER_TIMEOUT_S = saved
        await svc.close()
