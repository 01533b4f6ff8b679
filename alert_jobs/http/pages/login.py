"""``/login`` and ``/logout``: built-in accounts' sign-in, rate-limited.

The sign-in form is guarded by a double-submitted CSRF cookie (there is no session
yet). A wrong name and a wrong password get the same answer, and an unknown name
costs the same scrypt work as a known one, so neither the message nor the time says
which names exist. ``next`` is followed only to a path on this server.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from alert_jobs.http.auth import Auth, FormRefused
from alert_jobs.http.auth.guard import SESSION_COOKIE, client_address, read_limited
from alert_jobs.http.auth.passwords import dummy_hash, verify_password
from alert_jobs.http.auth.settings import HEADER_ENV, USERS_ENV
from alert_jobs.http.pages.render import page
from alert_jobs.store import utcnow

LOGIN_CSRF_COOKIE = "alert_jobs_login_csrf"
log = logging.getLogger("alert_jobs.http.login")


def safe_next(target: str) -> str:
    """A path on this server, never another site (``//evil``, ``https://…``, ``/\\evil``)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return "/alerts"


def login_routes(auth: Auth) -> list[Route]:
    def form(request: Request, *, status: int = 200, error: str = "", username: str = "",
             next_: str = "/alerts", headers: dict[str, str] | None = None) -> Response:
        csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not (32 <= len(csrf) <= 64 and csrf.isascii()):
            csrf = secrets.token_urlsafe(32)
        response = page(request, "login.html", title="Sign in", status=status, error=error,
                        username=username, next=safe_next(next_), login_csrf=csrf,
                        configured=auth.settings.configured,
                        accounts=bool(auth.settings.accounts), users_env=USERS_ENV,
                        header_env=HEADER_ENV)
        response.set_cookie(LOGIN_CSRF_COOKIE, csrf, path="/login", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    async def show(request: Request) -> Response:
        return form(request, next_=request.query_params.get("next", "/alerts"))

    async def sign_in(request: Request) -> Response:
        try:
            body = await read_limited(request)
        except FormRefused as exc:
            return form(request, status=exc.status, error=str(exc))
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                               keep_blank_values=True).items()}
        username = fields.get("username", "").strip()[:64]
        next_ = fields.get("next", "/alerts")
        sent, cookie = fields.get("csrf", ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not (sent and cookie and hmac.compare_digest(sent.encode(), cookie.encode())):
            return form(request, status=403, username=username, next_=next_,
                        error="This sign-in form's security token is missing or wrong "
                              "(the page is old, or its cookie is gone): try again.")
        if not auth.settings.accounts:
            return form(request, status=403, username=username, next_=next_,
                        error="No built-in accounts are configured on this server.")
        client, now = client_address(request), utcnow()
        # Checked and counted at once, before the slow password check: parallel guesses
        # cannot all slip through between a check and a count.
        wait = auth.throttle.attempt(username, client, now)
        if wait is not None:
            log.warning("sign-in refused (too many failures): user=%r client=%s",
                        username, client)
            return form(request, status=429, username=username, next_=next_,
                        headers={"Retry-After": str(wait)},
                        error=f"Too many failed sign-ins. Try again in {wait} seconds.")
        stored = auth.settings.accounts.get(username)
        ok = await run_in_threadpool(verify_password, fields.get("password", ""),
                                     stored or dummy_hash())
        if not (ok and stored):  # already counted by attempt()
            log.warning("sign-in failed: user=%r client=%s", username, client)
            return form(request, status=401, username=username, next_=next_,
                        error="Wrong user name or password.")
        auth.throttle.succeeded(username, client)
        token, _ = await run_in_threadpool(
            auth.get_timeline().sessions.start, username,
            lifetime=auth.settings.session_lifetime)
        log.info("signed in: user=%r client=%s", username, client)
        response = RedirectResponse(safe_next(next_), 303)
        response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https",
                            max_age=int(auth.settings.session_lifetime.total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    return [Route("/login", show, methods=["GET"]), Route("/login", sign_in, methods=["POST"])]


def logout_routes(auth: Auth) -> list[Route]:
    """``POST /logout`` (signed in, with the CSRF token): the session ends everywhere."""
    from alert_jobs.http.pages.context import posted

    async def sign_out(request: Request, form: dict[str, str]) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            await run_in_threadpool(auth.get_timeline().sessions.end, token)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return [Route("/logout", posted(sign_out), methods=["POST"])]
