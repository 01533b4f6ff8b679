"""``python -m alert_jobs.demo COMMAND``: the demo's processes (``make run`` uses ``run``).

- ``run``: prepare and start everything, stop it cleanly on Ctrl-C (the launcher);
- ``seed [PATH]``: (re)write the demo database and the alert history only;
- ``feed PATH``, ``redis PORT``, ``heartbeats URL``: one demo process each, as the
  launcher starts them. Each stops on SIGINT or SIGTERM between two steps and exits 0,
  without a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType


class StopFlag:
    """Set by SIGINT/SIGTERM; ``sleep`` wakes early once it is set."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m alert_jobs.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the demo (make run)")
    run.add_argument("--home", default=".dagster_home", help="DAGSTER_HOME of the demo")
    run.add_argument("--rules", default="alerts.yaml")
    run.add_argument("--workspace", default="workspace.yaml")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=3000, help="Dagster webserver")
    run.add_argument("--serve-port", type=int, default=8787, help="alert-jobs serve")
    run.add_argument("--redis-port", type=int, default=6390, help="the demo Redis")
    run.add_argument("--feed-every", type=float, default=15.0)
    run.add_argument("--ping-every", type=float, default=30.0)
    run.add_argument("--commands-per-second", type=float, default=10.0)
    seed = sub.add_parser("seed", help="write the demo database and alert history only")
    seed.add_argument("path", nargs="?", default=".dagster_home/demo.db")
    feed = sub.add_parser("feed", help="append fresh scores and orders until stopped")
    feed.add_argument("path")
    feed.add_argument("--every", type=float, default=15.0)
    redis = sub.add_parser("redis", help="the demo Redis and its cache traffic")
    redis.add_argument("port", type=int, nargs="?", default=6390)
    redis.add_argument("--commands-per-second", type=float, default=10.0)
    beats = sub.add_parser("heartbeats", help="the demo jobs' heartbeat pings")
    beats.add_argument("url", nargs="?", default="http://127.0.0.1:8787")
    beats.add_argument("--every", type=float, default=30.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from alert_jobs.demo.launcher import Settings
        from alert_jobs.demo.launcher import main as launch

        return launch(Settings(
            home=Path(args.home).resolve(), rules=Path(args.rules),
            workspace=Path(args.workspace), host=args.host, port=args.port,
            serve_port=args.serve_port, redis_port=args.redis_port,
            feed_every=args.feed_every, ping_every=args.ping_every,
            commands_per_second=args.commands_per_second))
    if args.command == "seed":
        from alert_jobs.demo.data import seed, seed_quality_history
        from alert_jobs.store import Timeline

        print(f"demo data written to {seed(args.path)}")
        episodes = seed_quality_history(Timeline())
        if episodes:
            print(f"demo alert history: {episodes} past alerts for the alert-quality assets")
        return 0
    stop = StopFlag()
    if args.command == "feed":
        from alert_jobs.demo import feed

        return feed.run(args.path, every=args.every, should_stop=stop, sleep=stop.sleep)
    if args.command == "redis":
        from alert_jobs.demo import traffic

        return traffic.run(args.port, commands_per_second=args.commands_per_second,
                           should_stop=stop)
    from alert_jobs.demo import pinger

    return pinger.run(args.url, every=args.every, should_stop=stop, sleep=stop.sleep)


if __name__ == "__main__":
    sys.exit(main())
