"""The OpenAPI document (`/openapi.json`), made to say what the hub does (schemathesis checks it):

- every route's error statuses carry the error body they answer: the hub's `ErrorBody`, or OpenAI's shape
  under the OpenAI paths. Each route lists its own; every route also answers 431 (headers over the caps)
  and 500, and with API keys configured every /v1 route answers 401 and 429 and declares Bearer auth;
- FastAPI's generic 422 is dropped: a request that fails validation is answered 400 `invalid_command`;
- the bounds that come from the config are in the schema: `audio.sample_rate`, `audio.channels` and
  `idle_timeout_s` of a session, `ttl_s` of a token; a session's `language` has the tag pattern.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..core.audio import Encoding
from ..core.config import HubConfig
from ..core.validation import MIN_SAMPLE_RATE
from ..operators.decode_av import OPUS_RATES
from .errors import ERROR_STATUS_TEXT, ErrorBody
from .openai_errors import OPENAI_PATHS, OpenAIErrorBody

PROTECTED_PREFIX = "/v1/"  # api.auth: every route under it takes a key (or a token) when keys are configured
EVERY_ROUTE = (431, 500)
WITH_KEYS = (401, 429)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its $defs inlined (an OpenAPI requestBody cannot use local $defs)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.split("/")[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


def install_openapi(app: FastAPI, config_of: Any) -> None:
    """`app.openapi()` builds the document for the config in force (`config_of()`: a reload may change
    the bounds), rebuilt only when they change."""
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        config: HubConfig = config_of()
        key = _bounds_key(config)
        if key not in cache:
            cache.clear()
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)
            cache[key] = truthful(doc, config)
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]


def _bounds_key(config: HubConfig) -> tuple[Any, ...]:
    limits, auth = config.limits, config.server.auth
    return (limits.max_sample_rate, limits.max_channels, limits.idle_timeout_s, auth.token_ttl_max_s,
            bool(auth.api_keys))


def truthful(doc: dict[str, Any], config: HubConfig) -> dict[str, Any]:
    keys = bool(config.server.auth.api_keys)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorBody, OpenAIErrorBody):
        schemas.update(inline_defs(model))
    for path, item in doc.get("paths", {}).items():
        openai = path.startswith(OPENAI_PATHS)
        body = {"$ref": f"#/components/schemas/{(OpenAIErrorBody if openai else ErrorBody).__name__}"}
        for op in item.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for status, response in responses.items():  # errors are JSON, whatever the route's own type
                if status >= "400" and len(response.get("content", {})) == 1:
                    response["content"] = {"application/json": next(iter(response["content"].values()))}
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None and stream.get("schema", {}).get("type") != "object":
                    stream["schema"] = sse_message(stream.get("schema"))
            statuses = EVERY_ROUTE + (WITH_KEYS if keys and path.startswith(PROTECTED_PREFIX) else ())
            for status in statuses:
                responses.setdefault(str(status), {"description": ERROR_STATUS_TEXT[status],
                                                   "content": {"application/json": {"schema": body}}})
            if keys and path.startswith(PROTECTED_PREFIX):
                op["security"] = [{"bearer": []}]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if keys:
        components["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "an API key of server.auth.api_keys, or (session routes) a token from POST /v1/tokens"}}
    _bounds(doc, config)
    for schema in _form_bodies(doc):
        _form_fields(schema, config)
    return doc


def sse_message(data: dict[str, Any] | None) -> dict[str, Any]:
    """One message of an event stream (what a client parses: `event`, `data`, `id`), whose `data` is JSON
    of the schema `data` (keep-alive comments are not messages)."""
    payload: dict[str, Any] = {"type": "string", "contentMediaType": "application/json"}
    if data:
        payload["contentSchema"] = data
    return {"type": "object", "required": ["data"], "properties": {
        "event": {"type": "string"}, "id": {"type": "string"}, "data": payload}}


def inline_defs(model: type[BaseModel]) -> dict[str, Any]:
    """The model and its nested models as component schemas (FastAPI adds them only where a route names them)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    return {**defs, model.__name__: schema}


#: What core.language.parse_language takes: "auto" (any case) or a BCP-47 tag; "" is "not set"
LANGUAGE_PATTERN = r"^(?:[Aa][Uu][Tt][Oo]|[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*)?$"


def _bounds(doc: dict[str, Any], config: HubConfig) -> None:
    limits = config.limits
    start = _json_body(doc, "/v1/sessions", "post")
    if start is not None:
        for branch in start["properties"]["language"].get("anyOf", []):
            if branch.get("type") == "string":
                branch["pattern"] = LANGUAGE_PATTERN
        audio = start["properties"]["audio"]["properties"]
        audio["sample_rate"].update(minimum=MIN_SAMPLE_RATE, maximum=limits.max_sample_rate)
        audio["channels"].update(minimum=1, maximum=limits.max_channels)
        _opus_rule(start["properties"]["audio"])
        _bound_nullable(start["properties"]["idle_timeout_s"], maximum=limits.idle_timeout_s)
    token = _json_body(doc, "/v1/tokens", "post")
    if token is not None:
        _bound_nullable(token["properties"]["ttl_s"], maximum=config.server.auth.token_ttl_max_s)


def _form_bodies(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The component schemas of the multipart (upload) request bodies."""
    found = []
    for item in doc.get("paths", {}).values():
        for op in item.values():
            ref = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema", {})
            name = str(ref.get("$ref", "")).rsplit("/", 1)[-1]
            if name in doc["components"]["schemas"]:
                found.append(doc["components"]["schemas"][name])
    return found


def _form_fields(schema: dict[str, Any], config: HubConfig) -> None:
    """A form field is sent or not: it has no null (schemathesis would send the text "null"); the
    headerless-PCM fields of POST /v1/transcribe carry the bounds and encodings the hub takes."""
    props: dict[str, Any] = schema.get("properties", {})
    for name, prop in props.items():
        branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1 and len(prop["anyOf"]) == 2:
            del prop["anyOf"]
            props[name] = {**branches[0], **prop}
    if "encoding" in props:
        props["encoding"]["enum"] = list(get_args(Encoding))
    if "sample_rate" in props:
        props["sample_rate"].update(minimum=MIN_SAMPLE_RATE, maximum=config.limits.max_sample_rate)
    if "channels" in props:
        props["channels"].update(minimum=1, maximum=config.limits.max_channels)
    if {"encoding", "sample_rate", "channels"} <= set(props):
        _opus_rule(schema)


def _opus_rule(audio: dict[str, Any]) -> None:
    """Raw Opus packets are decoded at the rates and channel counts libopus takes (operators.decode_av)."""
    audio["if"] = {"properties": {"encoding": {"const": "opus"}}, "required": ["encoding"]}
    audio["then"] = {"properties": {"sample_rate": {"enum": list(OPUS_RATES)}, "channels": {"enum": [1, 2]}}}


def _json_body(doc: dict[str, Any], path: str, method: str) -> dict[str, Any] | None:
    op = doc.get("paths", {}).get(path, {}).get(method)
    if op is None:
        return None
    return op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")  # type: ignore[no-any-return]


def _bound_nullable(prop: dict[str, Any], **bounds: Any) -> None:
    """Bounds on the number branch of a `number | null` property."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") in ("integer", "number"):
            branch.update(bounds)
