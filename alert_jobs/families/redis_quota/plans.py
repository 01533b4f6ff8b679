"""Upstash Redis plans and their limits, as Upstash's pricing docs state them.

Every figure is copied from one page read on one date (:data:`PRICING_SOURCE`); the
Redis monitoring guide's own table (10,000 commands a day; "Basic", "Pro", "Scale")
predates Upstash's February 2025 pricing and is not used. The ``quota`` presets and
``alert-jobs redis presets`` come from :data:`PLANS`. Plain data: importing this module
costs nothing (no HTTP client).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where every figure below comes from, and when it was read: the newest snapshot of
#: github.com/upstash/docs available (commit ef0ce43 of 2026-08-21; the page last changed
#: on 2026-06-18), read on 2026-11-30. The page it renders is docs/redis/overall/billing,
#: and Upstash names :data:`PRICING_URL` as the canonical one.
PRICING_SOURCE = "upstash/docs redis/overall/billing.mdx @ ef0ce43, read 2026-11-30"
PRICING_URL = "https://upstash.com/pricing/redis"
PRICING_READ = "2026-11-30"
#: Pay-as-you-go: "$0.20 per 100K commands" (the same page).
PAYG_USD_PER_100K_COMMANDS = 0.20


@dataclass(frozen=True)
class UpstashPlan:
    """One row of Upstash's "All plans and limits" table, as the page states it.

    ``monthly_commands`` is the plan's command quota; ``None`` where the plan has none
    (Pay-as-you-go bills per command up to the database's monthly budget; Fixed plans
    are a flat price capped on throughput and data size).
    """

    preset: str
    name: str
    price: str
    monthly_commands: int | None
    data_size: str
    bandwidth: str
    commands_per_second: int
    max_request: str
    max_record: str
    source: str = PRICING_SOURCE


PLANS: dict[str, UpstashPlan] = {p.preset: p for p in (
    UpstashPlan("upstash_free", "Free", "$0 / month", 500_000, "256 MB", "10 GB / month",
                10_000, "10 MB", "100 MB"),
    UpstashPlan("upstash_payg", "Pay-as-you-go", "$0.20 per 100K commands", None, "100 GB",
                "200 GB / month free, then $0.03 / GB", 10_000, "10 MB", "100 MB"),
    UpstashPlan("upstash_fixed_250mb", "Fixed 250 MB", "$10 / month", None, "250 MB", "50 GB",
                10_000, "10 MB", "100 MB"),
    UpstashPlan("upstash_fixed_1gb", "Fixed 1 GB", "$20 / month", None, "1 GB", "100 GB",
                10_000, "10 MB", "200 MB"),
    UpstashPlan("upstash_fixed_5gb", "Fixed 5 GB", "$100 / month", None, "5 GB", "500 GB",
                10_000, "20 MB", "300 MB"),
    UpstashPlan("upstash_fixed_10gb", "Fixed 10 GB", "$200 / month", None, "10 GB", "1 TB",
                10_000, "30 MB", "400 MB"),
    UpstashPlan("upstash_fixed_50gb", "Fixed 50 GB", "$400 / month", None, "50 GB", "5 TB",
                10_000, "50 MB", "500 MB"),
    UpstashPlan("upstash_fixed_100gb", "Fixed 100 GB", "$800 / month", None, "100 GB", "10 TB",
                16_000, "75 MB", "1 GB"),
    UpstashPlan("upstash_fixed_500gb", "Fixed 500 GB", "$1,500 / month", None, "500 GB",
                "20 TB", 16_000, "100 MB", "5 GB"),
)}


def payg_commands(budget_usd: float) -> int:
    """The commands a Pay-as-you-go monthly budget buys: when they are spent, Upstash
    rate-limits the database ("When the budget is reached the database is rate-limited")."""
    return round(budget_usd / PAYG_USD_PER_100K_COMMANDS * 100_000)


#: The limit before February 2025, which the Redis monitoring guide still quotes
#: (Upstash docs before commit 9dba4735: "Max 10.000 requests per day"). Kept as a preset
#: for databases still on it; not a current plan.
LEGACY_FREE_DAILY = 10_000
