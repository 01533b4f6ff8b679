"""``incidents:``: what a responder is asked about an incident, and how.

An alert episode's record (``alert_incidents``) says how the alert was verified to be
real, whether it was a false positive, the mitigation, follow-ups and whether the
runbook sufficed. "Verified how" is one of a short list the team agrees on (so the
review can count them), or free text where ``verified_free_text`` allows it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, field_validator

from alert_jobs.config.types import Duration, Strict


class IncidentsConfig(Strict):
    #: The answers to "how was it verified to be real?" offered first.
    verified_methods: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=lambda: ["dashboard", "logs", "reproduced", "customer report",
                                 "another alert"])
    #: Whether an answer outside the list is accepted.
    verified_free_text: bool = True
    #: How long the "how did it go?" link in a resolve message works.
    link_ttl: Duration = timedelta(days=14)

    @field_validator("verified_methods")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen = [v.strip().lower() for v in value]
        if len(set(seen)) != len(seen):
            raise ValueError("verified_methods lists an answer twice")
        return [v.strip() for v in value]

    def check_verified(self, answer: str) -> str:
        """The answer as stored; ValueError when it is not allowed."""
        text = answer.strip()
        for method in self.verified_methods:
            if text.lower() == method.lower():
                return method
        if not text:
            raise ValueError("say how it was verified")
        if not self.verified_free_text:
            raise ValueError(f"verified must be one of: {', '.join(self.verified_methods)} "
                             "(incidents.verified_free_text is off)")
        return text
