"""``python -m benchmarks``: run every benchmark, print tables, write results/latest.json."""

from __future__ import annotations

import sys
import time

import httpx
import redis

from benchmarks import (
    am_push_bench,
    baseline_accuracy,
    baseline_cost,
    cli_bench,
    cost_bench,
    daemon_bench,
    delivery_bench,
    deploy_scale,
    drift_bench,
    heartbeat_bench,
    open_alerts_bench,
    ping_bench,
    quality_bench,
    recovery_bench,
    redis_bench,
    redis_restart_soak,
    responder_bench,
    retention_bench,
    slo_bench,
    timeline_bench,
    watch_bench,
)


def main() -> int:
    started = time.perf_counter()
    results, skipped, failed = timeline_bench.run()
    redis_results, redis_skipped, redis_failed = redis_bench.run()
    delivery_results, delivery, delivery_skipped, delivery_failed = delivery_bench.run()
    drift_results, drift_skipped, drift_failed = drift_bench.run()
    quality_results, quality_skipped = quality_bench.run()
    cost_ticks, cost_colds, cost_skipped, cost_failed = cost_bench.run()
    slo_results, slo_skipped = slo_bench.run()
    accuracy = baseline_accuracy.run()
    baseline_results, baseline_skipped = baseline_cost.run()

    print(timeline_bench.format_table(results, skipped))
    print()
    print(redis_bench.format_table(redis_results, redis_skipped))
    print()
    print(delivery_bench.format_table(delivery_results, delivery, delivery_skipped))
    print()
    print(drift_bench.format_table(drift_results, drift_skipped))
    print(quality_bench.format_table(quality_results, quality_skipped))
    quality_bench.write_results(quality_results, quality_skipped)
    print()
    print(cost_bench.format_table(cost_ticks, cost_colds, cost_skipped))
    print()
    print(slo_bench.format_table(slo_results, slo_skipped))
    slo_bench.write_results(slo_results, slo_skipped)
    print()
    print(baseline_accuracy.format_table(accuracy))
    baseline_accuracy.write_results(accuracy)
    print()
    print(baseline_cost.format_table(baseline_results, baseline_skipped))
    baseline_cost.write_results(baseline_results, baseline_skipped)
    report = timeline_bench.metadata()
    report["packages"]["redis"] = redis.__version__
    report["packages"]["httpx"] = httpx.__version__
    report["parameters"].update(redis_bench.PARAMETERS)
    report["parameters"].update(delivery_bench.PARAMETERS)
    report.update({
        "elapsed_s": time.perf_counter() - started,
        "results": [*(c.as_json() for c in [*results, *redis_results, *delivery_results]),
                    *(r.as_json() for r in drift_results),
                    *cost_bench.results_json(cost_ticks, cost_colds),
                    *slo_bench.results_json(slo_results),
                    accuracy.as_json(),
                    *baseline_cost.results_json(baseline_results)],
        "skipped": {**skipped, **redis_skipped, **delivery_skipped, **drift_skipped,
                    **cost_skipped, **slo_skipped, **baseline_skipped},
        "delivery": delivery,
    })
    timeline_bench.write_results(report)
    print(f"\nwrote {timeline_bench.RESULTS_FILE} ({report['elapsed_s']:.0f} s)")
    heartbeat_failed = heartbeat_bench.main([])  # prints, writes results/heartbeat.json
    print()
    recovery_failed = recovery_bench.main([])  # prints, writes results/recovery.json
    print()
    ping_failed = ping_bench.main([])  # prints, writes results/pings.json
    print()
    cli_bench.main([])  # prints, writes results/cli.json
    print()
    responder_failed = responder_bench.main([])  # prints, writes results/responder.json
    print()
    am_push_failed = am_push_bench.main([])  # prints, writes results/am_push.json
    print()
    retention_failed = retention_bench.main([])  # prints, writes results/retention.json
    print()
    open_alerts_bench.main([])  # prints, writes results/open_alerts.json
    print()
    watch_failed = watch_bench.main([])  # prints, writes results/watch.json
    print()
    deploy_scale.main([])  # 1,000 rules on a PostgreSQL timeline: results/deploy_scale.json
    print()
    redis_restart_soak.main(["--reps", "3"])  # prints, writes results/redis_restart.json
    print()
    daemon_failed = daemon_bench.main([])  # 200 rules under dagster-daemon: CPU per minute
    slo_failed = any(r.mismatches for r in slo_results)
    baseline_failed = any(r.mismatches for r in baseline_results)
    return 1 if (failed or redis_failed or delivery_failed or drift_failed or cost_failed
                 or slo_failed or baseline_failed or heartbeat_failed or recovery_failed
                 or ping_failed or daemon_failed or responder_failed or am_push_failed
                 or retention_failed or watch_failed) else 0


if __name__ == "__main__":
    sys.exit(main())
