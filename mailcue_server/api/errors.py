"""The one table mapping domain errors to HTTP responses.

Every REST error has FastAPI's shape, ``{"detail": ...}``. Unexpected
exceptions are logged with their traceback and answered with a bare 500:
nothing internal reaches the client.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mailcue_server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    MailcueError,
    NotFound,
    RateLimited,
    Unauthenticated,
    UpstreamFailed,
)
from mailcue_server.schema.types.common import ErrorResponse

log = logging.getLogger(__name__)

HTTP_STATUS: tuple[tuple[type[MailcueError], int], ...] = (
    (Invalid, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (UpstreamFailed, 502),
)


def error_body(detail: str) -> dict[str, Any]:
    """The JSON body of an error answer (the ``ErrorResponse`` the OpenAPI document shows)."""
    return dataclasses.asdict(ErrorResponse(detail=detail))


def status_for(exc: MailcueError) -> int:
    if isinstance(exc, UpstreamFailed) and exc.timed_out:
        return 504
    for kind, code in HTTP_STATUS:
        if isinstance(exc, kind):
            return code
    return 400


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MailcueError)  # noqa: S101 - registered for MailcueError only
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(error_body(exc.message), status_code=status_for(exc), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("Internal server error"), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(MailcueError, _domain_error)
    app.add_exception_handler(Exception, _unexpected)
