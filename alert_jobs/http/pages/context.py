"""What every page handler shares: the timeline, the rules, sign-in, and form checking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from alert_jobs.config import RulesError, RulesFile
from alert_jobs.http.auth import Auth, FormRefused, checked_form
from alert_jobs.http.pages.render import refusal
from alert_jobs.notify.render import run_link
from alert_jobs.store import Timeline

#: ``source`` of the timeline events the pages write (links write "link", the CLI "cli").
SOURCE = "page"


@dataclass(frozen=True)
class Pages:
    auth: Auth
    get_timeline: Callable[[], Timeline]
    get_rules: Callable[[], RulesFile]

    def rules(self) -> RulesFile:
        """The rules in use; acting must work while the rules file is being fixed."""
        try:
            return self.get_rules()
        except RulesError:
            return RulesFile()

    def run_url(self, run_id: str | None) -> str | None:
        """The Dagster UI's page of a run, or ``None``."""
        return run_link(self.rules().defaults.dagster_url, run_id) or None


FormHandler = Callable[[Request, dict[str, str]], Awaitable[Response]]


def posted(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """A POST endpoint that only runs ``handler`` with a form whose CSRF token checks out;
    otherwise a 403 (or 413) page saying why, and nothing changes."""

    async def endpoint(request: Request) -> Response:
        try:
            form = await checked_form(request)
        except FormRefused as exc:
            return refusal(request, "Form refused", str(exc), exc.status)
        return await handler(request, form)

    return endpoint
