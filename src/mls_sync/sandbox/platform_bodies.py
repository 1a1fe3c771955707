"""The platforms' own answer bodies, as the sandbox serves them.

Shapes follow the sources cited in the `mls_sync.social` modules; where no public example was
found the text is modelled on the documented shape and marked "modelled". Clients branch on
status codes, error codes and types, never on the modelled wording.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import JSONResponse, Response

# -- Meta Graph (Facebook, Instagram) ----------------------------------------------------------


def graph_error(
    status: int,
    kind: str,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    transient: bool = False,
) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    return JSONResponse({"error": error}, status_code=status)


def graph_expired_token() -> JSONResponse:
    now = datetime.now(UTC)
    return graph_error(
        400,
        "OAuthException",
        190,
        f"Error validating access token: Session has expired on "
        f"{_graph_time(now - timedelta(hours=1))}. The current time is {_graph_time(now)}.",
        subcode=463,
    )


def graph_invalid_token() -> JSONResponse:
    return graph_error(
        400, "OAuthException", 190, "Invalid OAuth access token - Cannot parse access token"
    )


def graph_cannot_load(verb: str, object_id: str) -> JSONResponse:
    """Graph's one answer for an id that does not exist, is not ours, or refuses the verb."""
    return graph_error(
        400,
        "GraphMethodException",
        100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
    )


def graph_throttled(
    code: int, message: str, business_id: str, usage_type: str, minutes: int
) -> JSONResponse:
    usage = {
        business_id: [
            {
                "type": usage_type,
                "call_count": 100,
                "total_cputime": 14,
                "total_time": 18,
                "estimated_time_to_regain_access": minutes,
            }
        ]
    }
    response = graph_error(400, "OAuthException", code, message, transient=True)
    response.headers["x-business-use-case-usage"] = json.dumps(usage)
    return response


def graph_token(access_token: str) -> JSONResponse:
    # 60 days less a little, as Graph reports long-lived tokens.
    return JSONResponse(
        {"access_token": access_token, "token_type": "bearer", "expires_in": 5183944}
    )


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%A, %d-%b-%y %H:%M:%S UTC")


# -- LinkedIn ----------------------------------------------------------------------------------


def linkedin_error(
    status: int, message: str, *, code: str | None = None, service_code: int | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"status": status}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    if code is not None:
        body["code"] = code
    body["message"] = message
    return JSONResponse(body, status_code=status)


# -- X -----------------------------------------------------------------------------------------


def problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def x_limits(*, remaining: int, reset: str) -> dict[str, str]:
    # Per-user limit of DELETE /2/tweets/:id: 50 requests per 15 minutes.
    return {
        "x-rate-limit-limit": "50",
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": reset,
    }


# -- Google APIs -------------------------------------------------------------------------------


def google_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    error: dict[str, Any] = {"code": status, "message": message, "status": code, **extra}
    return JSONResponse({"error": error}, status_code=status)


def google_unauthenticated() -> JSONResponse:
    response = google_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
    response.headers["www-authenticate"] = (
        'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    )
    return response


def google_quota() -> JSONResponse:
    return google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
        "'mybusiness.googleapis.com' for consumer 'project_number:0'.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {"service": "mybusiness.googleapis.com", "quota_limit_value": "300"},
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "60s"},
        ],
    )


# -- Pinterest ---------------------------------------------------------------------------------


def pinterest_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


# -- OAuth 2.0 token endpoints (RFC 6749 section 5.2) --------------------------------------------


def oauth_error(status: int, error: str, description: str, **extra: Any) -> JSONResponse:
    body = {"error": error, "error_description": description, **extra}
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


def html(status: int, body: str) -> Response:
    return Response(body, status_code=status, media_type="text/html")
