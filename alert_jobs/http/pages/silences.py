"""Placeholder: filled in by the silences page work."""

from __future__ import annotations

from starlette.routing import Route

from alert_jobs.http.pages.context import Pages


def routes(pages: Pages) -> list[Route]:
    return []
