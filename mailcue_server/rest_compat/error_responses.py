"""The error answers of the REST routes, documented once for the OpenAPI document.

FastAPI documents a route's success answer and its 422, nothing else. The
rules here add what the server really answers: every route can get 413 (a
body over its limit, ``api/body_limits.py``), 414 and 431 (an oversized head,
``api/http_limits.py``); a route that takes input, 400 (a value its schema
cannot rule out); a route that signs in, 401 and 403; a route that names a
thing by path or mailbox, 404. Routes declare what else they answer with
:func:`errors` (409, 429, 502, 504...), next to their other ``responses``.

Every error but 422 (FastAPI's validation list) and the listener's plain-text
414 and 431 has the body :class:`ErrorResponse`, the shape ``api/errors.py``
sends; :func:`add_error_bodies` puts it in the document.
"""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.routing import BaseRoute

from mailcue_server.rest_compat.deps import get_context, get_principal
from mailcue_server.schema.types.common import ErrorResponse

DESCRIPTIONS: dict[int, str] = {
    400: "The request breaks a rule its schema cannot express (a bad value or state).",
    401: "No valid credentials: none, or an expired or revoked token or API key.",
    403: "Signed in, but not allowed: not an admin, or an API key without the scope "
    "or the mailbox.",
    404: "No such thing, or one the caller may not see.",
    409: "The change collides with what exists: a name taken, or a state that forbids it.",
    413: "The request body is larger than this route takes.",
    414: "The request target is longer than 8 KiB.",
    429: "Too many failed attempts: retry after `Retry-After` seconds.",
    431: "A header line longer than 8 KiB, or headers larger than 64 KiB in all.",
    502: "A server this one depends on is unreachable or failed.",
    504: "A server this one depends on did not answer in time.",
}
PLAIN_TEXT = frozenset({414, 431})  # answered by the HTTP listener before any route
VALIDATION = 422  # FastAPI's own shape (HTTPValidationError)
SCHEMA_NAME = "ErrorResponse"
_SIGNS_IN: frozenset[Callable[..., Any]] = frozenset({get_context, get_principal})


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's own error answers, for its decorator's ``responses=``."""
    return {code: {"description": DESCRIPTIONS[code]} for code in codes}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _common_errors(route: APIRoute) -> list[int]:
    codes = [413, 414, 431]
    dependant = route.dependant
    params = dependant.path_params + dependant.query_params + dependant.header_params
    for sub in dependant.dependencies:
        params += sub.path_params + sub.query_params + sub.header_params
    names = {param.name for param in params}
    if names or route.body_field is not None:
        codes.append(400)
    if any(call in _SIGNS_IN for call in _calls(dependant)):
        codes += [401, 403]
    if dependant.path_params or "mailbox" in names:
        codes.append(404)
    return codes


def document_errors(routes: list[BaseRoute]) -> None:
    """Add the common error answers to every API route (before the document is built)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            route.responses = {**errors(*_common_errors(route)), **route.responses}


def add_error_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """Give every error answer in ``document`` its body, and order each route's answers."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[SCHEMA_NAME] = TypeAdapter(ErrorResponse).json_schema()
    json_body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{SCHEMA_NAME}"}}}
    text_body = {"text/plain": {"schema": {"type": "string"}}}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            answers: dict[str, Any] = operation.get("responses", {})
            for code, answer in answers.items():
                status = int(code)
                if status >= 400 and status != VALIDATION and "content" not in answer:
                    answer["content"] = dict(text_body if status in PLAIN_TEXT else json_body)
            operation["responses"] = dict(sorted(answers.items()))
    return document
