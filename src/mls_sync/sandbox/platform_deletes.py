"""The sandbox's Instagram, Google Business Profile and Pinterest delete endpoints.

See `mls_sync.sandbox.platforms` for the routes and the shared state; bodies come from
`platform_bodies` and follow the sources cited in `mls_sync.social.instagram`,
`.google_business` and `.pinterest`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mls_sync.sandbox import platform_bodies as bodies
from mls_sync.sandbox.platforms import (
    GOOGLE,
    INSTAGRAM,
    INSTAGRAM_PREFIX,
    PINTEREST,
    TokenState,
    bearer,
)

if TYPE_CHECKING:
    from mls_sync.sandbox.platforms import PlatformSandbox

GOOGLE_POST = "/v4/accounts/{account}/locations/{location}/localPosts/{post}"


def delete_routes(sandbox: PlatformSandbox) -> list[Route]:
    instagram = f"{INSTAGRAM_PREFIX}/{{version}}/{{media_id}}"

    async def instagram_delete(request: Request) -> Response:
        return await _instagram(sandbox, request, delete=True)

    async def instagram_read(request: Request) -> Response:
        return await _instagram(sandbox, request, delete=False)

    async def google_delete(request: Request) -> Response:
        return await _google(sandbox, request)

    async def pinterest_delete(request: Request) -> Response:
        return await _pinterest(sandbox, request)

    return [
        Route(instagram, sandbox.tracked(INSTAGRAM, instagram_delete), methods=["DELETE"]),
        Route(instagram, instagram_read, methods=["GET"]),
        Route(GOOGLE_POST, sandbox.tracked(GOOGLE, google_delete), methods=["DELETE"]),
        Route(
            "/v5/pins/{pin_id}", sandbox.tracked(PINTEREST, pinterest_delete), methods=["DELETE"]
        ),
    ]


async def _instagram(sandbox: PlatformSandbox, request: Request, *, delete: bool) -> Response:
    media_id = request.path_params["media_id"]
    token = bearer(request) or request.query_params.get("access_token")
    endpoint = "delete" if delete else "read"
    if (early := await sandbox.admit(INSTAGRAM, request, endpoint)) is not None:
        return early
    admission = sandbox.check(INSTAGRAM, token)
    if admission.token is TokenState.EXPIRED:
        return bodies.graph_expired_token()
    if admission.token is TokenState.INVALID:
        return bodies.graph_invalid_token()
    if admission.throttled:
        return bodies.graph_throttled(
            80002,
            "There have been too many calls to this Instagram account. Wait a bit and try again.",
            "17841400000000000",
            "instagram",
            sandbox.regain_access_minutes,
        )
    if not delete:
        if sandbox.exists(INSTAGRAM, media_id):
            return JSONResponse({"id": media_id})
        return bodies.graph_cannot_load("get", media_id)
    if sandbox.instagram_allows_delete and sandbox.take(INSTAGRAM, media_id):
        return JSONResponse({"success": True})
    # Graph's answer both for media it cannot find and for media it will not delete.
    return bodies.graph_cannot_load("delete", media_id)


async def _google(sandbox: PlatformSandbox, request: Request) -> Response:
    params = request.path_params
    name = (
        f"accounts/{params['account']}/locations/{params['location']}/localPosts/{params['post']}"
    )
    if (early := await sandbox.admit(GOOGLE, request)) is not None:
        return early
    admission = sandbox.check(GOOGLE, bearer(request))
    if admission.token is not TokenState.VALID:
        return bodies.google_unauthenticated()  # expired and unknown tokens alike
    if admission.throttled:
        return bodies.google_quota()
    if sandbox.take(GOOGLE, name):
        return JSONResponse({})
    return bodies.google_error(404, "NOT_FOUND", "Requested entity was not found.")


async def _pinterest(sandbox: PlatformSandbox, request: Request) -> Response:
    pin_id = request.path_params["pin_id"]
    if (early := await sandbox.admit(PINTEREST, request)) is not None:
        return early
    admission = sandbox.check(PINTEREST, bearer(request))
    if admission.token is not TokenState.VALID:
        return bodies.pinterest_error(401, 2, "Authentication failed.")
    if admission.throttled:
        return bodies.pinterest_error(429, 29, "Rate limit exceeded.")
    if sandbox.take(PINTEREST, pin_id):
        return Response(status_code=204)
    return bodies.pinterest_error(404, 50, "Pin not found.")  # modelled
