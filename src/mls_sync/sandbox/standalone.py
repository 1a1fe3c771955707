"""`mls-sync sandbox`: the sandbox MLS and platforms as long-running local servers, to try
`mls-sync serve` against (docs/service.md walks through it).

The RESO server is seeded with listings of one agent and one office, and answers to one bearer
token. Next to the RESO routes it serves a small control API under `/_sandbox/` (what tests do
in Python, done with curl): list the MLS's listings, change a status, add a listing, put a
post on a platform so that its deletion can be watched, and make the MLS fail (alerts).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox, format_timestamp
from mls_sync.sandbox.server import BackgroundServer

MLS_TOKEN = "sandbox-mls-token"
AGENT_ID = "AGENT-1"
OFFICE_ID = "OFFICE-1"
PLATFORM_TOKEN = "sandbox-{platform}-token"
SEEDED_PLATFORMS = ("facebook", "linkedin", "x")


@dataclass
class Sandbox:
    reso: ResoSandbox
    platforms: PlatformSandbox
    app: Starlette  # the RESO routes plus /_sandbox/


@dataclass(frozen=True)
class MlsBehaviour:
    """The sandbox MLS's vendor behaviour, as `mls-sync sandbox` options set it."""

    vendor: str = "generic"  # "mlsgrid": ListingId only, OriginatingSystemName, gzip, <= 5 `or`
    supports_in: bool = True  # False: `in (...)` answers 400, like OData 4.0 servers
    status_labels: bool = False  # "Active Under Contract" instead of "ActiveUnderContract"
    max_page_size: int = 200
    latency: float = 0.0  # seconds added to every answer
    rate_limit: float | None = None  # requests per second per token, then 429 + Retry-After
    entity_events: bool = False  # serve RCP-027 /EntityEvent


def build_sandbox(listings: int = 10, behaviour: MlsBehaviour | None = None) -> Sandbox:
    behaviour = behaviour or MlsBehaviour()
    reso = ResoSandbox(
        tokens=[MLS_TOKEN],
        max_page_size=behaviour.max_page_size,
        latency=behaviour.latency,
        entity_events=behaviour.entity_events,
    )
    reso.vendor = behaviour.vendor
    reso.supports_in = behaviour.supports_in
    reso.status_labels = behaviour.status_labels
    reso.rate_limit = behaviour.rate_limit
    for n in range(1, listings + 1):
        reso.add_listing(
            f"LK-{n:04d}",
            f"MLS-{n:03d}",
            "Active",
            list_price=250_000 + 10_000 * n,
            list_agent_mls_id=AGENT_ID if n % 2 else "AGENT-2",
            list_office_mls_id=OFFICE_ID,
        )
    platforms = PlatformSandbox()
    for platform in SEEDED_PLATFORMS:
        platforms.add_token(platform, PLATFORM_TOKEN.format(platform=platform))
    control = _Control(reso, platforms)
    app = Starlette(
        routes=[
            Route("/_sandbox/listings", control.listings, methods=["GET", "POST"]),
            Route("/_sandbox/listings/{key}", control.set_status, methods=["PUT"]),
            Route("/_sandbox/posts", control.add_post, methods=["POST"]),
            Route("/_sandbox/posts/{platform}/{post_id:path}", control.post, methods=["GET"]),
            Route("/_sandbox/fail", control.fail, methods=["POST", "DELETE"]),
            Mount("/", app=reso.app),
        ]
    )
    return Sandbox(reso, platforms, app)


class _Control:
    def __init__(self, reso: ResoSandbox, platforms: PlatformSandbox) -> None:
        self._reso = reso
        self._platforms = platforms

    async def listings(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            if not isinstance(body.get("listingKey"), str):
                return JSONResponse({"error": "listingKey is needed"}, status_code=422)
            self._reso.add_listing(
                body["listingKey"],
                str(body.get("listingId") or body["listingKey"]),
                str(body.get("status") or "Active"),
                list_agent_mls_id=body.get("listAgentMlsId"),
                list_office_mls_id=body.get("listOfficeMlsId"),
            )
            return JSONResponse(self._listing(body["listingKey"]), status_code=201)
        return JSONResponse([self._listing(x.listing_key) for x in self._reso.all_listings()])

    def _listing(self, key: str) -> dict[str, Any]:
        listing = self._reso.listing(key)
        return {
            "listingKey": listing.listing_key,
            "listingId": listing.listing_id,
            "status": listing.standard_status,
            "modificationTimestamp": format_timestamp(listing.modification_timestamp),
            "listAgentMlsId": listing.list_agent_mls_id,
            "listOfficeMlsId": listing.list_office_mls_id,
        }

    async def set_status(self, request: Request) -> Response:
        key = request.path_params["key"]
        status = (await _json(request)).get("status")
        if not isinstance(status, str):
            return JSONResponse({"error": 'send {"status": "Closed"}'}, status_code=422)
        try:
            self._reso.set_status(key, status)
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(self._listing(key))

    async def add_post(self, request: Request) -> Response:
        body = await _json(request)
        platform, post_id = body.get("platform"), body.get("postId")
        if not isinstance(platform, str) or not isinstance(post_id, str):
            return JSONResponse({"error": "platform and postId are needed"}, status_code=422)
        try:
            self._platforms.add_post(platform, post_id)
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"platform": platform, "postId": post_id, "exists": True}, 201)

    async def fail(self, request: Request) -> Response:
        """`POST {"status": 500, "count": 3}`: the next `count` MLS answers fail with `status`
        (the service tries each request 3 times, so 3 fail one request); DELETE clears."""
        if request.method == "DELETE":
            self._reso.fail_next.clear()
            return JSONResponse({"queued": 0})
        body = await _json(request)
        status, count = body.get("status", 500), body.get("count", 3)
        if not isinstance(status, int) or not 400 <= status <= 599:
            return JSONResponse({"error": "status must be an HTTP error (400-599)"}, 422)
        if not isinstance(count, int) or not 1 <= count <= 10_000:
            return JSONResponse({"error": "count must be 1..10000"}, 422)
        self._reso.fail_next.extend([status] * count)
        return JSONResponse({"queued": len(self._reso.fail_next)})

    async def post(self, request: Request) -> Response:
        platform, post_id = request.path_params["platform"], request.path_params["post_id"]
        try:
            exists = self._platforms.has_post(platform, post_id)
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"platform": platform, "postId": post_id, "exists": exists})


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def run_forever(sandbox: Sandbox, *, port: int, on_start: Any) -> None:
    """Serve the RESO sandbox on `port` and the platforms on `port + 1` until interrupted."""
    with (
        BackgroundServer(sandbox.app, port=port) as mls,
        BackgroundServer(sandbox.platforms.app, port=port + 1) as social,
    ):
        on_start(mls.url, social.url)
        stop = threading.Event()
        # Ctrl-C, or SIGTERM from a process manager, ends the wait; the servers then stop.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
