"""The platforms' own answer bodies, as the sandbox serves them.

Shapes follow the sources cited in the `mls_sync.social` modules; where no public example was
found the text is modelled on the documented shape and marked "modelled". Clients branch on
status codes, error codes and types, never on the modelled wording. `SERVER_ERRORS` and
`RATE_LIMITED` are each platform's answers for queued faults and chaos.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import JSONResponse, Response

from mls_sync.social.base import Platform

# -- Meta Graph (Facebook, Instagram) ----------------------------------------------------------

# The newest Graph version in 2026-12, which Graph names in its 2635 answer
# (https://developers.facebook.com/docs/graph-api/changelog/versions).
GRAPH_LATEST = "v25.0"
GRAPH_TOKEN_SECONDS = 5183944  # 60 days less a little, as Graph reports long-lived tokens


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


def graph_expired_token(now: datetime | None = None) -> JSONResponse:
    # 190/463, HTTP 400 (snarfed/bridgy#59, huydx/facy#15); `now` is the sandbox's clock.
    now = now or datetime.now(UTC)
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


def graph_retired_version() -> JSONResponse:
    """A call to a Graph version past its end of life, answered before the token is read
    (facebook/facebook-nodejs-business-sdk#239; maraujo/pySocialWatcher#30 shows the Ads API
    wording). The HTTP status and type are as those threads report them."""
    return graph_error(
        400,
        "OAuthException",
        2635,
        "(#2635) You are calling a deprecated version of the Graph API. Please update to the "
        f"latest version: {GRAPH_LATEST}.",
    )


def graph_no_active_token() -> JSONResponse:
    """``/me`` without any token: code 2500, HTTP 400 (fbsamples/messenger-platform-samples#125,
    jgorset/facepy#135)."""
    return graph_error(
        400,
        "OAuthException",
        2500,
        "An active access token must be used to query information about the current user.",
    )


# Permission errors, https://developers.facebook.com/docs/graph-api/guides/error-handling
# ("10: API Permission Denied", "200-299: API Permission"): code -> (HTTP status, message).
# 200 with HTTP 403 and this exact message: snarfed/bridgy#78. 10's wording as in
# minimaxir/facebook-ad-library-scraper#6 with Graph's "(#code)" prefix; its HTTP 400 is modelled.
GRAPH_PERMISSION_ERRORS: dict[int, tuple[int, str]] = {
    10: (400, "(#10) Application does not have permission for this action"),
    200: (403, "(#200) Permissions error"),
}

# Code 190's session subcodes (the guide's "Authentication Error Subcodes"), all HTTP 400.
GRAPH_SESSION_MESSAGES: dict[int, str] = {
    # yongjhih/RetroFacebook#21 (HTTP 400, code 190, after the user removed the app)
    458: "Error validating access token: The user has not authorized application {app_id}.",
    # roughike/flutter_facebook_login#151 (HTTP 400, code 190, subcode 460)
    460: "Error validating access token: The session has been invalidated because the user "
    "changed their password or Facebook has changed the session for security reasons.",
    # 463 is `graph_expired_token`. 467: wording as integrations report a logged-out session
    # (pdir/social-feed-bundle#48, mageplaza/magento-2-social-login#172); the pairing with 467
    # ("Invalid access token" in the guide) is modelled.
    467: "Error validating access token: The session is invalid because the user logged out.",
}


def graph_permission_error(code: int) -> JSONResponse:
    status, message = GRAPH_PERMISSION_ERRORS[code]
    return graph_error(status, "OAuthException", code, message)


def graph_session_error(subcode: int, app_id: str, now: datetime | None = None) -> JSONResponse:
    if subcode == 463:
        return graph_expired_token(now)
    message = GRAPH_SESSION_MESSAGES[subcode].format(app_id=app_id)
    return graph_error(400, "OAuthException", 190, message, subcode=subcode)


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
    return JSONResponse(
        {"access_token": access_token, "token_type": "bearer", "expires_in": GRAPH_TOKEN_SECONDS}
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


def linkedin_retired_version(version: str) -> JSONResponse:
    """A ``LinkedIn-Version`` past its sunset: HTTP 426, as integrations report it
    (n8n-io/n8n#28967, ComposioHQ/composio#4320)."""
    return linkedin_error(
        426, f"Requested version {version} is not active", code="NONEXISTENT_VERSION"
    )


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


# -- faults, as each platform words them ---------------------------------------------------------

_FACEBOOK, _INSTAGRAM, _LINKEDIN = Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN
_X, _GOOGLE, _PINTEREST, _TIKTOK = (
    Platform.X,
    Platform.GOOGLE_BUSINESS,
    Platform.PINTEREST,
    Platform.TIKTOK,
)

# The platform's own 5xx answer.
SERVER_ERRORS: dict[str, Callable[[], Response]] = {
    # Graph's "API Unknown" error, which its docs call a temporary issue.
    _FACEBOOK: lambda: graph_error(
        500, "OAuthException", 1, "An unknown error has occurred.", transient=True
    ),
    _INSTAGRAM: lambda: graph_error(
        500, "OAuthException", 2, "An unexpected error has occurred.", transient=True
    ),
    _LINKEDIN: lambda: linkedin_error(500, "Internal Server Error"),  # modelled
    _X: lambda: problem(503, "Service Unavailable", "Service Unavailable"),  # modelled
    _GOOGLE: lambda: google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
    _PINTEREST: lambda: pinterest_error(500, 0, "Internal error."),  # modelled
    _TIKTOK: lambda: oauth_error(500, "internal_error", "Internal error."),  # modelled
}


def _short_throttle(response: Response, retry_after: int) -> Response:
    response.headers["Retry-After"] = str(retry_after)
    return response


# A short burst of throttling, as each platform words it, lifting after `retry_after` seconds.
RATE_LIMITED: dict[str, Callable[[int], Response]] = {
    # Graph: code 4 (application request limit); no usage estimate, so the client backs off.
    _FACEBOOK: lambda s: graph_error(
        400, "OAuthException", 4, "(#4) Application request limit reached"
    ),
    _INSTAGRAM: lambda s: graph_error(
        400, "OAuthException", 4, "(#4) Application request limit reached"
    ),
    _LINKEDIN: lambda s: _short_throttle(linkedin_error(429, "Too many requests"), s),
    _X: lambda s: _short_throttle(problem(429, "Too Many Requests", "Too Many Requests"), s),
    _GOOGLE: lambda s: google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Requests'.",
        details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{s}s"}],
    ),
    _PINTEREST: lambda s: _short_throttle(
        pinterest_error(429, 8, "You have exceeded your rate limit. Try again later."), s
    ),
    _TIKTOK: lambda s: _short_throttle(
        oauth_error(429, "rate_limit_exceeded", "Too many requests."), s
    ),
}
