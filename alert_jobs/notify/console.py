"""Console receiver: writes the message standard as text to a log (and so to the run log)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from alert_jobs.notify.render import render_text

log = logging.getLogger("alert_jobs.console")


@dataclass
class ConsoleReceiver:
    """Logs each notification; the default receiver so a fresh install shows alerts."""

    name: str = "console"
    send_resolved: bool = True
    logger: logging.Logger = field(default=log)

    def send(self, message: dict[str, Any]) -> None:
        self.logger.warning("%s", render_text(message))
