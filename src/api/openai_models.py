"""GET /v1/models and /v1/models/{id} (DESIGN §3.8): OpenAI's model list, made of the hub's providers and
the configured OpenAI aliases (`openai_compat.aliases`), and the alias resolution every OpenAI route uses."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..core.commands import StartSession
from ..core.errors import ErrorCode
from ..providers.base import Provider
from .openai_errors import OpenAIErrorBody, OpenAIRoute, ParamError

router = APIRouter(route_class=OpenAIRoute, tags=["OpenAI-compatible"])
STARTED = int(time.time())


class ModelCard(BaseModel):
    """OpenAI's Model object, plus what the hub knows about it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    provider: str             # the hub provider that serves this id
    model: str                # that provider's model (e.g. bundled:tiny.en)
    status: str               # available | loading | unavailable | unhealthy
    alias: bool               # an OpenAI name mapped onto a provider


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def resolve(request: Request, model: str | None, language: str | None = None, task: str = "transcribe") -> Provider:
    """An OpenAI `model` -> the hub provider serving it: an alias, a provider name, or ""/"default"."""
    return resolve_model(request.app.state.hub, model, language, task)


def resolve_model(hub: Any, model: str | None, language: str | None = None, task: str = "transcribe") -> Provider:
    """An alias onto "" (or the model "default") is the hub's own choice: `providers.routes` by language and
    task (e.g. translate -> a multilingual Whisper), else the default provider."""
    aliases: dict[str, str] = hub.config.openai_compat.aliases
    name = model or ""
    if name in aliases:
        name = aliases[name]
    if name in ("", "default"):
        return hub.providers.for_request(None, language, task)  # type: ignore[no-any-return]
    if name not in hub.providers.providers:
        known = sorted({*aliases, *hub.providers.providers})
        raise ParamError(ErrorCode.unknown_provider, f"unknown model '{model}'; this hub serves: {', '.join(known)}",
                         "model")
    return hub.providers.get(name)  # type: ignore[no-any-return]


def hub_choice(hub: Any, model: str | None) -> bool:
    """`model` leaves the provider to the hub: an alias onto "" (whisper-1 by default), or "default"."""
    name = model or ""
    aliases: dict[str, str] = hub.config.openai_compat.aliases
    return aliases.get(name, name) in ("", "default") and name not in hub.providers.providers


def routed_start(hub: Any, model: str | None, start: StartSession) -> StartSession:
    """A session for the hub's choice names no provider: the service routes it by its language, the named
    one or, with none, the one its speech is in (DESIGN §5)."""
    return start.model_copy(update={"provider": None}) if hub_choice(hub, model) else start


def catalog(request: Request) -> list[ModelCard]:
    hub = request.app.state.hub
    providers: dict[str, Provider] = hub.providers.providers
    cards = [ModelCard(id=p.name, created=STARTED, owned_by="asrhub", provider=p.name, model=p.model,
                       status=p.health().status, alias=False) for p in providers.values()]
    for alias, target in hub.config.openai_compat.aliases.items():
        p = providers.get(target or hub.providers.config.default)
        if p is not None and alias not in providers:
            cards.append(ModelCard(id=alias, created=STARTED, owned_by="asrhub", provider=p.name, model=p.model,
                                   status=p.health().status, alias=True))
    return cards


@router.get("/v1/models", response_model=ModelList,
            summary="List models (OpenAI-compatible): providers and aliases")
async def list_models(request: Request) -> JSONResponse:
    return JSONResponse(ModelList(data=catalog(request)).model_dump())


@router.get("/v1/models/{model_id:path}", response_model=ModelCard,
            responses={404: {"model": OpenAIErrorBody, "description": "no such model"}},
            summary="Retrieve a model (OpenAI-compatible)")
async def get_model(request: Request, model_id: str) -> JSONResponse:
    for card in catalog(request):
        if card.id == model_id:
            return JSONResponse(card.model_dump())
    raise ParamError(ErrorCode.unknown_provider, f"no model '{model_id}'", "model")
