"""Every responder page needs a signed-in user; every form a CSRF token.

:class:`RequireSignIn` is default-deny: whatever ``alert-jobs serve`` answers needs a
user, except the paths in :data:`PUBLIC` — heartbeat pings, signed action links (the
signature is the authority: one incident, once), ``/healthz``, ``/metrics``, the
Alertmanager API (its own bearer/basic auth) and the sign-in page itself. A request
without a user is sent to the sign-in page (GET) or refused with 401 (anything else).

A user comes from

* the trusted proxy header (:mod:`~alert_jobs.http.auth.settings`), when configured and
  the request comes from a trusted proxy address; its CSRF token is a double-submitted
  cookie (:data:`PROXY_CSRF_COOKIE`);
* else the session cookie (:data:`SESSION_COOKIE`), looked up in ``alert_sessions``;
  its CSRF token is the session's own.

:func:`checked_form` reads a POSTed form and refuses it (:class:`FormRefused`, 403)
unless its ``csrf`` field is the user's token.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alert_jobs.http.auth.settings import AuthSettings
from alert_jobs.http.auth.throttle import LoginThrottle
from alert_jobs.store import Timeline

SESSION_COOKIE = "alert_jobs_session"
PROXY_CSRF_COOKIE = "alert_jobs_page_csrf"
CSRF_FIELD = "csrf"
#: Paths that carry their own authority or none is needed (prefixes end with "/").
PUBLIC = ("/healthz", "/metrics", "/login", "/ping/", "/a/", "/api/v2/")
#: A page's form is a few fields; anything larger is refused before it is parsed.
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True)
class User:
    name: str
    csrf: str
    via: str  # "session" or "proxy"


class FormRefused(Exception):
    """A POST whose CSRF token is missing or wrong, or whose body is too large."""

    def __init__(self, reason: str, status: int = 403):
        super().__init__(reason)
        self.status = status


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


class Auth:
    """Sign-in settings, the login throttle and the session store, for one app."""

    def __init__(self, settings: AuthSettings, get_timeline: Callable[[], Timeline],
                 throttle: LoginThrottle | None = None):
        self.settings = settings
        self.get_timeline = get_timeline
        self.throttle = throttle or LoginThrottle()

    def proxy_user(self, request: Request) -> str | None:
        header = self.settings.user_header
        if header is None or client_address(request) not in self.settings.trusted_proxies:
            return None
        name = request.headers.get(header, "").strip()
        return name[:128] or None

    def user_of(self, request: Request) -> User | None:
        """The signed-in user of ``request`` (blocking: may read the session table)."""
        proxied = self.proxy_user(request)
        if proxied is not None:
            csrf = request.cookies.get(PROXY_CSRF_COOKIE, "")
            if not (32 <= len(csrf) <= 64 and csrf.isascii()):
                csrf = secrets.token_urlsafe(32)
            return User(proxied, csrf, "proxy")
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        session = self.get_timeline().sessions.get(token, idle=self.settings.session_idle)
        return User(session.username, session.csrf, "session") if session else None


class RequireSignIn:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, auth: Auth):
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response: Response
        try:
            user = await run_in_threadpool(self.auth.user_of, request)
        except Exception as exc:  # the database is down: say so, do not crash
            response = PlainTextResponse(f"sign-in unavailable: the timeline database did "
                                         f"not answer ({type(exc).__name__})\n", 503)
            await response(scope, receive, send)
            return
        if user is None:
            if scope["method"] in ("GET", "HEAD"):
                target = scope["path"] + (f"?{scope['query_string'].decode()}"
                                          if scope.get("query_string") else "")
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
            else:
                response = PlainTextResponse("sign in first (GET /login)\n", 401)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        if user.via == "proxy" and request.cookies.get(PROXY_CSRF_COOKIE) != user.csrf:
            cookie = (f"{PROXY_CSRF_COOKIE}={user.csrf}; Path=/; HttpOnly; SameSite=Strict"
                      + ("; Secure" if scope.get("scheme") == "https" else ""))

            async def send_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [*message.get("headers", []),
                               (b"set-cookie", cookie.encode())]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_cookie)
            return
        await self.app(scope, receive, send)


def current_user(request: Request) -> User:
    user: User = request.state.user
    return user


def cross_site(request: Request) -> bool:
    """Whether the browser says the form comes from another origin (``Sec-Fetch-Site``
    other than ``same-origin``; a browser sends it on every request, proxies leave it
    alone, and an old browser without it is left to the token). A second line behind the
    token: a proxy user's token is a cookie, which a sibling subdomain could plant."""
    site = request.headers.get("sec-fetch-site")
    return site is not None and site not in ("same-origin", "none")


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form (first value of each field), if its CSRF token is the user's and
    it was not sent from another site."""
    if cross_site(request):
        raise FormRefused("This form was sent from another site; the pages accept only "
                          "their own forms. Nothing changed.")
    body = await read_limited(request)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                         keep_blank_values=True).items()}
    if any("\x00" in v for v in form.values()):
        raise FormRefused("The form holds a NUL character, which no field may contain. "
                          "Nothing changed.", 400)
    sent = form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent.encode(), current_user(request).csrf.encode()):
        raise FormRefused("This form's security token is missing or does not match your "
                          "session (a forged request, or a page from before you signed in "
                          "again): reload the page and submit it again. Nothing changed.")
    return form


async def read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormRefused(f"The form is larger than {MAX_FORM_BYTES // 1024} KiB. "
                          "Nothing changed.", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused(f"The form is larger than {MAX_FORM_BYTES // 1024} KiB. "
                              "Nothing changed.", 413)
    return body
