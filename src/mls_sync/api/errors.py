"""Error answers: 422s that name the field at fault and never echo what was sent."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mls_sync.management import InvalidInput
from mls_sync.store.open import SqlOnlyError


def invalid(exc: InvalidInput, *, at: Sequence[str] = ("body",)) -> HTTPException:
    """A rule broken by a well-formed request, answered like pydantic's own 422s."""
    detail = [{"loc": [*at, exc.field], "msg": exc.message, "type": "value_error"}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default body repeats each bad value ("input"), which may be a token.
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _sql_only(request: Request, exc: Exception) -> JSONResponse:
    # A feature the DynamoDB backend does not offer (the dashboard page): one clear answer.
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_501_NOT_IMPLEMENTED)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SqlOnlyError, _sql_only)
