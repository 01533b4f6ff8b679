"""Console receiver: writes the message standard as text to a log (and so to the run log)."""

from __future__ import annotations

import logging

import httpx

from alert_jobs.config import ConsoleReceiverConfig
from alert_jobs.notify.base import Receiver
from alert_jobs.notify.contract import GroupMessage
from alert_jobs.notify.render import render_group_text

log = logging.getLogger("alert_jobs.console")


class ConsoleReceiver(Receiver[ConsoleReceiverConfig]):
    """Logs each notification; the default receiver, so a fresh install shows alerts."""

    def __init__(self, config: ConsoleReceiverConfig | None = None):
        super().__init__(config or ConsoleReceiverConfig(name="console", type="console"))

    def render(self, group: GroupMessage) -> str:
        return render_group_text(group)

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        log.warning("%s", self.render(group))
