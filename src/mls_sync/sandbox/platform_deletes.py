"""The sandbox's delete and read endpoints: Graph (Facebook, Instagram), LinkedIn, X, Google
Business Profile and Pinterest.

See `mls_sync.sandbox.platforms` for the routes and `platform_state` for the shared state;
bodies come from `platform_bodies` and follow the sources cited in the `mls_sync.social`
modules.

LinkedIn judges ``LinkedIn-Version`` before the token: missing is 400 (modelled), retired is 426.

Every Graph request passes the same gate, in Graph's order: a retired version (code 2635) is
answered before the token is read; then an expired or unknown token (190), a token Graph refuses
(permission codes 10 and 200, session subcodes of 190), and throttling.

Instagram has two logins (https://developers.facebook.com/docs/instagram-platform/reference/
instagram-media): with Facebook Login the Page's token deletes media on graph.facebook.com, so
the Facebook host deletes Instagram media the sandbox holds; the Instagram Login host
(``/instagram/...``) refuses deletes unless `instagram_allows_delete` is set.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mls_sync.sandbox import platform_bodies as bodies
from mls_sync.sandbox.platform_state import (
    FACEBOOK,
    GOOGLE,
    INSTAGRAM,
    INSTAGRAM_PREFIX,
    LINKEDIN,
    PINTEREST,
    Admission,
    PlatformState,
    TokenState,
    X,
    bearer,
    graph_access_token,
)

GOOGLE_POST = "/v4/accounts/{account}/locations/{location}/localPosts/{post}"
# Whose `/me` a valid token reads: a Page on the Facebook host, an IG account on Instagram's.
ME_IDS = {FACEBOOK: "102030405060708", INSTAGRAM: "17841400000000000"}
ME_NAME = "Sandbox Page"


def delete_routes(sandbox: PlatformState) -> list[Route]:
    """X, LinkedIn, Google Business Profile and Pinterest (Graph's are `graph_routes`)."""
    linkedin = "/rest/posts/{urn:path}"

    async def x_delete(request: Request) -> Response:
        return await _x_delete(sandbox, request)

    async def linkedin_delete(request: Request) -> Response:
        return await _linkedin_delete(sandbox, request)

    async def linkedin_read(request: Request) -> Response:
        return await _linkedin_read(sandbox, request)

    async def google_delete(request: Request) -> Response:
        return await _google(sandbox, request)

    async def pinterest_delete(request: Request) -> Response:
        return await _pinterest(sandbox, request)

    return [
        Route("/2/tweets/{tweet_id}", sandbox.tracked(X, x_delete), methods=["DELETE"]),
        Route(linkedin, sandbox.tracked(LINKEDIN, linkedin_delete), methods=["DELETE"]),
        Route(linkedin, linkedin_read, methods=["GET"]),
        Route(GOOGLE_POST, sandbox.tracked(GOOGLE, google_delete), methods=["DELETE"]),
        Route(
            "/v5/pins/{pin_id}", sandbox.tracked(PINTEREST, pinterest_delete), methods=["DELETE"]
        ),
    ]


def graph_routes(sandbox: PlatformState) -> list[Route]:
    """Instagram's prefix first, Facebook's catch-all ``/{version}/{object_id}`` last; each
    ``/me`` before the id route that would take "me" for an id."""
    instagram = f"{INSTAGRAM_PREFIX}/{{version}}/{{media_id}}"
    facebook = "/{version}/{object_id}"

    async def instagram_delete(request: Request) -> Response:
        return await _instagram(sandbox, request, delete=True)

    async def instagram_read(request: Request) -> Response:
        return await _instagram(sandbox, request, delete=False)

    async def instagram_me(request: Request) -> Response:
        return await _me(sandbox, INSTAGRAM, request)

    async def facebook_delete(request: Request) -> Response:
        return await _facebook_delete(sandbox, request)

    async def facebook_read(request: Request) -> Response:
        return await _facebook_read(sandbox, request)

    async def facebook_me(request: Request) -> Response:
        return await _me(sandbox, FACEBOOK, request)

    return [
        Route(f"{INSTAGRAM_PREFIX}/{{version}}/me", instagram_me, methods=["GET"]),
        Route(instagram, sandbox.tracked(INSTAGRAM, instagram_delete), methods=["DELETE"]),
        Route(instagram, instagram_read, methods=["GET"]),
        Route("/{version}/me", facebook_me, methods=["GET"]),
        Route(facebook, sandbox.tracked(FACEBOOK, facebook_delete), methods=["DELETE"]),
        Route(facebook, facebook_read, methods=["GET"]),
    ]


async def _graph_gate(
    sandbox: PlatformState, platform: str, request: Request, endpoint: str, *, me: bool = False
) -> Response | None:
    """The answer that ends a Graph request before its object is looked at, if any."""
    if (early := await sandbox.admit(platform, request, endpoint)) is not None:
        return early
    if sandbox.version_retired(platform, request.path_params["version"]):
        return bodies.graph_retired_version()
    token = graph_access_token(request)
    if me and token is None:
        return bodies.graph_no_active_token()
    return _refused(sandbox, platform, sandbox.check(platform, token), request)


def _refused(
    sandbox: PlatformState, platform: str, admission: Admission, request: Request
) -> Response | None:
    if admission.token is TokenState.EXPIRED:
        return bodies.graph_expired_token(sandbox.clock())
    if admission.token is TokenState.INVALID:
        return bodies.graph_invalid_token()
    if admission.refusal is not None:
        return admission.refusal.answer(sandbox.clock())
    if not admission.throttled:
        return None
    if platform == INSTAGRAM:
        return bodies.graph_throttled(
            80002,
            "There have been too many calls to this Instagram account. Wait a bit and try again.",
            ME_IDS[INSTAGRAM],
            "instagram",
            sandbox.regain_access_minutes,
        )
    object_id = request.path_params.get("object_id") or ME_IDS[FACEBOOK]
    return bodies.graph_throttled(
        32,
        "(#32) Page request limit reached",
        object_id.split("_", 1)[0],  # a Page post's id starts with its Page's
        "pages",
        sandbox.regain_access_minutes,
    )


async def _me(sandbox: PlatformState, platform: str, request: Request) -> Response:
    if (refused := await _graph_gate(sandbox, platform, request, "read", me=True)) is not None:
        return refused
    return JSONResponse({"id": ME_IDS[platform], "name": ME_NAME})


async def _facebook_delete(sandbox: PlatformState, request: Request) -> Response:
    """A Page post, or an Instagram media deleted with the Page's token (Facebook Login)."""
    if (refused := await _graph_gate(sandbox, FACEBOOK, request, "delete")) is not None:
        return refused
    object_id = request.path_params["object_id"]
    holder = INSTAGRAM if sandbox.exists(INSTAGRAM, object_id) else FACEBOOK
    if sandbox.delete_denied(holder, object_id) or not sandbox.take(holder, object_id):
        # Graph's one answer for gone, not ours and not deletable alike (code 100, subcode 33).
        return bodies.graph_cannot_load("delete", object_id)
    return JSONResponse({"success": True})


async def _facebook_read(sandbox: PlatformState, request: Request) -> Response:
    """``GET /{version}/{id}?fields=id``: a Page post or Instagram media read back."""
    if (refused := await _graph_gate(sandbox, FACEBOOK, request, "read")) is not None:
        return refused
    object_id = request.path_params["object_id"]
    if sandbox.exists(FACEBOOK, object_id) or sandbox.exists(INSTAGRAM, object_id):
        return JSONResponse({"id": object_id})
    return bodies.graph_cannot_load("get", object_id)


async def _instagram(sandbox: PlatformState, request: Request, *, delete: bool) -> Response:
    """The Instagram Login host (graph.instagram.com)."""
    endpoint = "delete" if delete else "read"
    if (refused := await _graph_gate(sandbox, INSTAGRAM, request, endpoint)) is not None:
        return refused
    media_id = request.path_params["media_id"]
    if not delete:
        if sandbox.exists(INSTAGRAM, media_id):
            return JSONResponse({"id": media_id})
        return bodies.graph_cannot_load("get", media_id)
    allowed = sandbox.instagram_allows_delete and not sandbox.delete_denied(INSTAGRAM, media_id)
    if allowed and sandbox.take(INSTAGRAM, media_id):
        return JSONResponse({"success": True})
    # Graph's answer both for media it cannot find and for media it will not delete.
    return bodies.graph_cannot_load("delete", media_id)


async def _linkedin_delete(sandbox: PlatformState, request: Request) -> Response:
    if (refused := await _linkedin_gate(sandbox, request, "delete")) is not None:
        return refused
    taken = sandbox.take(LINKEDIN, request.path_params["urn"])
    if taken is None:
        return bodies.linkedin_error(404, "Not Found", code="NOT_FOUND")  # modelled
    # Deletes are idempotent: a post deleted earlier answers 204 again, like a fresh one.
    return Response(status_code=204)


async def _linkedin_read(sandbox: PlatformState, request: Request) -> Response:
    """A read of one post, which the clients use as a cheap probe of their version."""
    if (refused := await _linkedin_gate(sandbox, request, "read")) is not None:
        return refused
    urn = request.path_params["urn"]
    if sandbox.exists(LINKEDIN, urn):
        return JSONResponse({"id": urn})
    return bodies.linkedin_error(404, "Not Found", code="NOT_FOUND")  # modelled


async def _linkedin_gate(
    sandbox: PlatformState, request: Request, endpoint: str
) -> Response | None:
    """The answer that ends a /rest request before its post is looked at, if any: the
    version is judged before the token."""
    if (early := await sandbox.admit(LINKEDIN, request, endpoint)) is not None:
        return early
    version = request.headers.get("linkedin-version")
    if not version:
        # modelled: versioned /rest endpoints refuse requests without LinkedIn-Version
        return bodies.linkedin_error(
            400,
            "A version must be present. Please specify a version by adding the "
            "LinkedIn-Version header.",
            code="VERSION_MISSING",
        )
    if sandbox.version_retired(LINKEDIN, version):
        return bodies.linkedin_retired_version(version)
    admission = sandbox.check(LINKEDIN, bearer(request))
    if admission.token is TokenState.EXPIRED:
        # modelled on the documented 401 shape; the exact service code is not published
        return bodies.linkedin_error(
            401,
            "The token used in the request has expired",
            code="EXPIRED_ACCESS_TOKEN",
            service_code=65602,
        )
    if admission.token is TokenState.INVALID:
        return bodies.linkedin_error(
            401, "Invalid access token", code="INVALID_ACCESS_TOKEN", service_code=65600
        )
    if admission.throttled:
        return bodies.linkedin_error(
            429,
            "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
        )
    return None


async def _x_delete(sandbox: PlatformState, request: Request) -> Response:
    tweet_id = request.path_params["tweet_id"]
    token = bearer(request)
    if (early := await sandbox.admit(X, request)) is not None:
        return early
    admission = sandbox.check(X, token)
    if admission.token is not TokenState.VALID:
        # X answers an expired and an unknown token alike.
        return bodies.problem(401, "Unauthorized", "Unauthorized")
    reset = str(int(time.time()) + sandbox.x_window_seconds)
    if admission.throttled:
        response = bodies.problem(429, "Too Many Requests", "Too Many Requests")
        response.headers.update(bodies.x_limits(remaining=0, reset=reset))
        return response
    if sandbox.take(X, tweet_id):
        response = JSONResponse({"data": {"deleted": True}})
    else:
        not_found = {
            "value": tweet_id,
            "detail": f"Could not find tweet with id: [{tweet_id}].",
            "title": "Not Found Error",
            "resource_type": "tweet",
            "parameter": "id",
            "resource_id": tweet_id,
            "type": "https://api.twitter.com/2/problems/resource-not-found",
        }
        response = JSONResponse({"errors": [not_found]}, status_code=404)
    response.headers.update(bodies.x_limits(remaining=49, reset=reset))
    return response


async def _google(sandbox: PlatformState, request: Request) -> Response:
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


async def _pinterest(sandbox: PlatformState, request: Request) -> Response:
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
