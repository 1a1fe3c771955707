"""Error answers: each typed service error has one status, and 422s name the field at fault
and never echo what was sent."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mls_sync.domain.errors import (
    Conflict,
    InvalidInput,
    NeedsReauth,
    NotFound,
    ServiceError,
    Unavailable,
    Unsupported,
)

# Most specific first: the first class an error is an instance of gives its status.
STATUS_OF: tuple[tuple[type[ServiceError], int], ...] = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (InvalidInput, status.HTTP_422_UNPROCESSABLE_CONTENT),
    # The MLS refused the credentials or did not answer: a gateway's failure, said in words.
    (NeedsReauth, status.HTTP_502_BAD_GATEWAY),
    (Unavailable, status.HTTP_502_BAD_GATEWAY),
    (Unsupported, status.HTTP_501_NOT_IMPLEMENTED),
)


def status_of(error: ServiceError) -> int:
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def invalid_detail(error: InvalidInput) -> list[dict[str, object]]:
    """A rule broken by a well-formed request, answered like pydantic's own 422s."""
    return [
        {"loc": ["body", *error.within, error.field], "msg": error.message, "type": "value_error"}
    ]


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, InvalidInput):
        return JSONResponse({"detail": invalid_detail(exc)}, status_code=status_of(exc))
    return JSONResponse({"detail": exc.message}, status_code=status_of(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default body repeats each bad value ("input"), which may be a token.
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
