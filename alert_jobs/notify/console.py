"""Console receiver: writes the message standard as text to a log (and so to the run log)."""

from __future__ import annotations

import logging

import httpx

from alert_jobs.notify.base import Receiver
from alert_jobs.notify.contract import GroupMessage
from alert_jobs.notify.render import render_group_text

log = logging.getLogger("alert_jobs.console")


class ConsoleReceiver(Receiver):
    """Logs each notification; the default receiver, so a fresh install shows alerts."""

    name: str = "console"

    def render(self, group: GroupMessage) -> str:
        return render_group_text(group)

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        log.warning("%s", self.render(group))
