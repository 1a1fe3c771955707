"""The dashboard at `/`: a server-rendered page of one user's recent runs, status changes,
errors, connections that need re-authentication and stuck unpublish jobs, with a "sync now"
button per connection.

Users sign in with their API key through a form; the page then lives on a signed cookie
(dashboard_session.py). Every form carries the sign-in's CSRF token, and POSTs whose `Origin`
names another site are refused. The "sync now" button runs the same guarded sync as
`POST /api/mls-connections/{id}/sync`, then redirects back to the page (post/redirect/get),
which shows the outcome. An open page refreshes its data on its own (static/dashboard.js).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import jinja2
import structlog
from fastapi import APIRouter, FastAPI, Form, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mls_sync.api.auth_throttle import TOO_MANY, check_not_throttled, count_refusal
from mls_sync.api.dashboard_session import (
    FLASH_COOKIE,
    FLASH_SECONDS,
    SESSION_COOKIE,
    Flash,
    SessionCodec,
    WebSession,
    codec_for,
    csrf_matches,
)
from mls_sync.api.deps import RuntimeDep, looks_like_id
from mls_sync.config import Settings
from mls_sync.domain.errors import CONNECTION_NOT_FOUND, NotFound, ServiceError
from mls_sync.runtime import Runtime
from mls_sync.services import connections, sync, users
from mls_sync.services.dashboard import dashboard_data
from mls_sync.services.records import User

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
STATIC_PATH = "/static"
TRIGGER = "dashboard"
WRONG_KEY = (
    "That API key is not valid. Use the key `mls-sync users add` or `mls-sync users key` printed."
)
FORM_EXPIRED = (
    "This form has expired or did not come from this page. Reload the page and try again."
)
# Only this origin's pages, scripts and styles; no inline code, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # MLS numbers, error texts and names are other people's data
    undefined=jinja2.StrictUndefined,
)
_env.filters["when"] = _when
_env.filters["duration"] = _duration
templates = Jinja2Templates(env=_env)


def install(app: FastAPI) -> None:
    """The page's routes and its static files (served from the package: no CDN)."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="static")


# sign-in state


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec | None = getattr(request.app.state, "dashboard_codec", None)
    if codec is None:
        settings: Settings = request.app.state.settings
        codec = request.app.state.dashboard_codec = codec_for(settings)
    return codec


async def _signed_in(request: Request, runtime: Runtime) -> tuple[WebSession, User] | None:
    codec = _codec(request)
    session = codec.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    try:
        async with runtime.db.transaction() as db:
            user = await users.find_user(db, session.user_id)
    except NotFound:
        return None
    if not codec.still_valid(session, user.api_key_hash, user.web_sessions_ended_at):
        return None
    return session, user


def _same_origin(request: Request) -> bool:
    """Browsers send `Origin` with every POST; one naming another site is a forged form (and
    this also stops other sites signing a visitor in to an account of theirs)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or a very old one: SameSite and the CSRF token still hold
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _page(
    request: Request, template: str, context: dict[str, Any], *, code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"static": STATIC_PATH, **context}, status_code=code
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=status.HTTP_303_SEE_OTHER)


def _problem(request: Request, text: str, code: int) -> HTMLResponse:
    return _page(request, "problem.html", {"text": text}, code=code)


# routes


@router.get("/")
async def dashboard(request: Request, runtime: RuntimeDep) -> Response:
    signed_in = await _signed_in(request, runtime)
    if signed_in is None:
        return _redirect("/sign-in")
    session, user = signed_in
    flash = _codec(request).read_flash(request.cookies.get(FLASH_COOKIE))
    response = _page(
        request,
        "dashboard.html",
        {
            **await _live_context(runtime, session, user),
            "flash": flash,
            "refresh_seconds": request.app.state.settings.dashboard_refresh_seconds,
        },
    )
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


@router.get("/dashboard/live")
async def live(request: Request, runtime: RuntimeDep) -> Response:
    """The page's data alone, for the page to refresh itself with."""
    signed_in = await _signed_in(request, runtime)
    if signed_in is None:
        return Response("Signed out", status_code=status.HTTP_401_UNAUTHORIZED)
    return _page(request, "_live.html", await _live_context(runtime, *signed_in))


async def _live_context(runtime: Runtime, session: WebSession, user: User) -> dict[str, Any]:
    async with runtime.db.transaction() as db:
        data = await dashboard_data(db, user.id)
    return {"data": data, "csrf": session.csrf, "user": user, "now": datetime.now(UTC)}


@router.get("/sign-in")
async def sign_in_form(request: Request, runtime: RuntimeDep) -> Response:
    if await _signed_in(request, runtime) is not None:
        return _redirect("/")
    return _page(request, "sign_in.html", {"error": None})


@router.post("/sign-in")
async def sign_in(
    request: Request, runtime: RuntimeDep, api_key: Annotated[str, Form()] = ""
) -> Response:
    if not _same_origin(request):
        return _problem(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
    try:
        check_not_throttled(request)
    except HTTPException as exc:  # the page, not JSON; with the same Retry-After
        page = _page(request, "sign_in.html", {"error": TOO_MANY}, code=exc.status_code)
        page.headers.update(exc.headers or {})
        return page
    async with runtime.db.transaction() as db:
        user = await users.authenticate(db, api_key.strip())
    if user is None:
        count_refusal(request)
        log.info("dashboard sign-in refused")
        return _page(
            request, "sign_in.html", {"error": WRONG_KEY}, code=status.HTTP_401_UNAUTHORIZED
        )
    codec = _codec(request)
    _, cookie = codec.open(user.id, user.api_key_hash)
    response = _redirect("/")
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=codec.max_age_seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    log.info("dashboard sign-in", user_id=user.id)
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, runtime: RuntimeDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Ends this sign-in and every other of the user's, on the server: the cookie is refused
    from now on even where a copy of it is kept."""
    signed_in = await _signed_in(request, runtime)
    if signed_in is not None:
        session, user = signed_in
        if not (_same_origin(request) and csrf_matches(session, csrf)):
            return _problem(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        async with runtime.db.transaction() as db:
            await users.end_web_sessions(db, user.id)
        log.info("dashboard sign-out", user_id=user.id)
    response = _redirect("/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/dashboard/connections/{connection_id}/sync")
async def sync_now(
    connection_id: str,
    request: Request,
    runtime: RuntimeDep,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    signed_in = await _signed_in(request, runtime)
    if signed_in is None:
        return _redirect("/sign-in")
    session, user = signed_in
    if not (_same_origin(request) and csrf_matches(session, csrf)):
        return _problem(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
    flash = await _sync(runtime, connection_id, user.id)
    response = _redirect("/")
    response.set_cookie(
        FLASH_COOKIE,
        _codec(request).flash(flash),
        max_age=FLASH_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


async def _sync(runtime: Runtime, connection_id: str, user_id: str) -> Flash:
    """The same guarded sync as the API's user route; its answer, as the page shows it."""
    if not looks_like_id(connection_id):
        return Flash(False, CONNECTION_NOT_FOUND)
    try:
        response = await sync.sync_connection(
            runtime.engine, connection_id, user_id=user_id, trigger=TRIGGER
        )
    except ServiceError as exc:
        return Flash(False, exc.message)
    try:
        async with runtime.db.transaction() as db:
            connection = await connections.get_connection(db, connection_id, user_id=user_id)
        name = connection.name or connection.base_url
    except NotFound:  # removed since the sync ended
        name = "MLS"
    return Flash(response.success, f"{name}: {response.message}")
