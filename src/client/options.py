"""The start options of a client call: a StartSession, a dict, keyword arguments, or a StartSession with
keyword arguments over it. What is not a valid StartSession is an InvalidOptions naming the fields (a
StartSession the caller built is taken as it is: pydantic validated it then)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..core.commands import StartSession, validation_error
from .errors import InvalidOptions

StartOptions = StartSession | Mapping[str, Any]


def _validated(data: Mapping[str, Any]) -> StartSession:
    try:
        return StartSession.model_validate(dict(data))
    except ValidationError as e:
        fields = tuple(dict.fromkeys(".".join(str(p) for p in err["loc"]) or "options" for err in e.errors()))
        refusal = validation_error(e)  # the code and words the hub would answer with
        raise InvalidOptions(refusal.code.value, f"invalid start options: {refusal.message}", fields) from e


def start_options(options: StartOptions | None, fields: Mapping[str, Any]) -> StartSession:
    """`options` (a StartSession, a dict, or None) with `fields` (keyword arguments) over it."""
    if options is None or isinstance(options, Mapping):
        return _validated({**(options or {}), **fields})
    if not isinstance(options, StartSession):
        raise InvalidOptions("invalid_command", f"options must be a StartSession or a dict, not "
                             f"{type(options).__name__}", ("options",))
    if not fields:
        return options
    return options.model_copy(update=_validated(fields).model_dump(exclude_unset=True))
