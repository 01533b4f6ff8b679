"""``alert-jobs redis check``: check Redis targets now, like one scheduled run (the
Redis guide's "test the monitor"); ``alert-jobs redis presets``: the Upstash plans the
``quota`` presets come from, with where and when their figures were read."""

from __future__ import annotations

import argparse

from alert_jobs.runtime.commands import (
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    UsageError,
    deliver_now,
    rules_of,
    timeline_of,
)


def register(commands: Commands) -> None:
    sub = commands.group("redis", "Redis quota commands")
    sp = sub.add_parser("check", help="check redis_quota targets now (all by default); "
                                      "exit 1 if any cannot be read")
    sp.add_argument("targets", nargs="*", metavar="TARGET")
    sp.set_defaults(fn=cmd_redis_check)
    pp = sub.add_parser("presets", help="list the Upstash plans behind quota presets, with "
                                        "their source and the date it was read")
    pp.set_defaults(fn=cmd_redis_presets)


def cmd_redis_presets(args: argparse.Namespace) -> int:
    from alert_jobs.families.redis_quota.plans import (
        LEGACY_FREE_DAILY,
        PLANS,
        PRICING_SOURCE,
        PRICING_URL,
    )

    rows = [("preset", "plan", "price", "commands quota", "data", "bandwidth", "cmds/s")]
    for plan in PLANS.values():
        if plan.monthly_commands is not None:
            quota = f"{plan.monthly_commands:,} / month"
        elif plan.preset == "upstash_payg":
            quota = "budget_usd ÷ $0.20 per 100K"
        else:
            quota = "none (not a quota preset)"
        rows.append((plan.preset, plan.name, plan.price, quota, plan.data_size,
                     plan.bandwidth, f"{plan.commands_per_second:,}"))
    rows.append(("upstash_free_legacy_daily", "Free before Feb 2025", "$0",
                 f"{LEGACY_FREE_DAILY:,} / day", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\nSource: {PRICING_SOURCE} (canonical page: {PRICING_URL}).")
    print("Prices change: check the page before relying on a figure.")
    return EXIT_OK


def cmd_redis_check(args: argparse.Namespace) -> int:
    from alert_jobs.core.formatting import fmt_number
    from alert_jobs.families.redis_quota.check import fmt_bytes
    from alert_jobs.families.redis_quota.config import RedisQuotaTarget
    from alert_jobs.families.redis_quota.run import check_targets

    rules = rules_of(args)
    by_name = {t.name: t for t in rules.rules_of(RedisQuotaTarget)}
    unknown = [n for n in args.targets if n not in by_name]
    if unknown:
        raise UsageError(f"unknown redis_quota target(s) {', '.join(unknown)} "
                         f"(known: {', '.join(by_name) or 'none'})")
    targets = [by_name[n] for n in args.targets] or list(by_name.values())
    if not targets:
        raise UsageError(f"{args.rules} has no redis_quota targets")
    timeline = timeline_of(args)
    results = check_targets(rules, targets, timeline)
    for r in results:
        m = r.metrics
        print(f"{r.target}:")
        if r.error:
            print(f"  ERROR {r.error}")
        if "used" in m:
            print(f"  commands used: {fmt_number(round(m['used']))} of {fmt_number(m['limit'])} "
                  f"({m['percent']:.1f} %)")
        if "estimate" in r.text:
            print(f"  {r.text['estimate']}")
        if "rate_basis" in r.text:
            projected = (f", projected {fmt_number(round(m['projected']))}"
                         if "projected" in m else "")
            print(f"  rate: {r.text['rate_basis']}{projected}")
        if "ops_rate" in r.text:
            print(f"  ops/s: {r.text['ops_rate']}")
        if "keys" in m:
            hit = f"{m['hit_rate_percent']:.1f} %" if "hit_rate_percent" in m else "n/a"
            print(f"  keys: {fmt_number(m['keys'])}, hit rate: {hit}, "
                  f"memory: {fmt_bytes(m['memory_used_bytes'])}")
        print(f"  monitor spent {r.commands_spent} command(s) on this check")
        for outcome in r.outcomes:
            obs = outcome.observation
            level = f"{obs.severity}" if obs.severity else str(obs.status)
            print(f"  {obs.labels.get('check', 'quota')}: {level}, {outcome.state}: {obs.summary}")
    deliver_now(rules, timeline)  # the targets' batch is flushed once, so no ids here
    return EXIT_FAILED if any(r.error for r in results) else EXIT_OK
