"""Typed actions on top of PyStoreX.

Payloads are frozen dataclasses (PyStoreX keeps them as they are; it would turn dicts into Maps and
pool actions with str payloads forever). Each action type has one payload class: no shape guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


def guarded(name: str, fn: Callable[[Any], Action[Any] | None],
            on_error: Callable[[Any, Exception], Action[Any] | None]
            ) -> Callable[[Observable[Any]], Observable[Action[Any]]]:
    """Map each item with `fn`; an exception becomes `on_error`'s action for that item only, and the
    effect stream stays alive for every other session."""

    def call(item: Any) -> Action[Any] | None:
        try:
            return fn(item)
        except Exception as e:
            log.exception("effect %s failed", name)
            try:
                return on_error(item, e)
            except Exception:
                log.exception("effect %s error handler failed", name)
                return None

    def op(source: Observable[Any]) -> Observable[Action[Any]]:
        return source.pipe(ops.map(call), ops.filter(lambda a: a is not None))

    return op
