"""Typed actions on top of PyStoreX.

Payloads are frozen dataclasses (PyStoreX keeps them as they are; it would turn dicts into Maps and
pool actions with str payloads forever). Each action type has one payload class: no shape guessing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import reactivex
from pystorex import Action
from reactivex import Observable
from reactivex import operators as ops

from ..core.events import Event

log = logging.getLogger(__name__)
P = TypeVar("P")


class ActionType(Generic[P]):
    """`started = ActionType[Started]("[Session] Started")`; `started(Started(...))` builds the action."""

    def __init__(self, type: str) -> None:
        self.type = type

    def __call__(self, payload: P) -> Action[P]:
        return Action(self.type, payload)


@dataclass(frozen=True)
class EventPayload:
    """Base for payloads that carry a client-visible event; the router delivers `event` by session id."""

    session_id: str
    event: Event


def of_type(*types: ActionType[Any]) -> Callable[[Observable[Action[Any]]], Observable[Action[Any]]]:
    names = {t.type for t in types}
    return ops.filter(lambda a: isinstance(a, Action) and a.type in names)


def guarded(name: str, fn: Callable[[Any], Sequence[Action[Any]] | None],
            on_error: Callable[[Any, Exception], Sequence[Action[Any]] | None]
            ) -> Callable[[Observable[Any]], Observable[Action[Any]]]:
    """Map each item to the actions `fn` answers (flattened); an exception becomes `on_error`'s
    actions for that item only, and the effect stream stays alive for every other session."""

    def call(item: Any) -> list[Action[Any]]:
        try:
            return list(fn(item) or ())
        except Exception as e:
            log.exception("effect %s failed", name)
            try:
                return list(on_error(item, e) or ())
            except Exception:
                log.exception("effect %s error handler failed", name)
                return []

    def op(source: Observable[Any]) -> Observable[Action[Any]]:
        return flatten(source.pipe(ops.map(call)))

    return op


def flatten(source: Observable[list[Action[Any]]]) -> Observable[Action[Any]]:
    """Each list's actions, in order, as they come (what `flat_map` does for plain lists, without its
    per-item inner observable and scheduler: this runs for every event of every session)."""

    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        def on_next(items: list[Action[Any]]) -> None:
            for item in items:
                observer.on_next(item)

        return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

    return reactivex.create(subscribe)


def guarded_async(name: str, fn: Callable[[Any], Awaitable[Sequence[Action[Any]]] | None]
                  ) -> Callable[[Observable[Any]], Observable[Action[Any]]]:
    """Like `guarded` for I/O that completes later: `fn` starts it on the running loop and the
    actions it answers are emitted when it is done (None: nothing to start). A failure is logged;
    it emits nothing."""

    def start(item: Any) -> Observable[Action[Any]]:
        try:
            work = fn(item)
        except Exception:
            log.exception("effect %s failed", name)
            return reactivex.empty()
        if work is None:
            return reactivex.empty()
        future = asyncio.ensure_future(work)

        return reactivex.from_future(future).pipe(ops.flat_map(lambda result: list(result or ())),
                                                  ops.catch(_log_and_stop(name)))

    def op(source: Observable[Any]) -> Observable[Action[Any]]:
        return source.pipe(ops.flat_map(start))

    return op


def _log_and_stop(name: str) -> Callable[[Exception, Any], Observable[Any]]:
    def handler(e: Exception, _source: Any) -> Observable[Any]:
        if not isinstance(e, asyncio.CancelledError):
            log.error("effect %s failed: %s", name, e, exc_info=e)
        return reactivex.empty()
    return handler
