"""Chaos test: three real failures under a real daemon page a real receiver within SLA.

One ``dagster-daemon``, one ``dagster-webserver`` (its GraphQL answering) and one
``alert-jobs serve`` (heartbeat pings) run on a temporary ``DAGSTER_HOME`` with SQLite,
on a copy of the demo's rules (``alerts.yaml``): ``dead_letters`` (sql_metric),
``demo_cache`` (redis_quota) and ``demo_etl`` (heartbeat), their schedules every minute,
their notifications routed to a local webhook receiver on 127.0.0.1 that records when
each page arrives. Once all three are healthy (evaluated ok, a first Redis sample
stored, the heartbeat up) and nothing has paged (the negative control), three failures
are injected at the same moment:

* dead letters inserted into the demo database the rule reads;
* a Redis load on the real Redis (``REDIS_URL``): ``INCR`` of a private key in a private
  db index, enough commands that the quota rule crosses its critical percent (deleted
  afterwards). The server is shared, so the copy's quota is sized and its day placed
  by :func:`quota_plan` (what other work did before does not count; its hit-rate check
  is off);
* the heartbeat goes silent (the demo pinger's ping loop stops).

Each page must arrive within its rule's ``sla`` (the shipped one where alerts.yaml sets
it for a schedule like the copy's; measured from the injection, a heartbeat's from its
last ping, so its period and grace are included); the measured times are printed
(``-s``: "dead_letters paged in 61 s (SLA 3 minutes)"). A page that does not arrive in
time fails the test with the outbox (which run raised each message, when it was
delivered) and the tails of the daemon's and the server's logs.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from alert_jobs.core.durations import format_duration, parse_duration
from alert_jobs.demo.feed import FMT
from alert_jobs.demo.pinger import ping_until_accepted
from alert_jobs.heartbeat import ping
from tests.conftest import ROOT, free_port
from tests.processes import arrival_receiver, stop_process

pytestmark = [pytest.mark.timeout(600), pytest.mark.long_running]

#: The demo rules the test drives, by family, and each one's SLA in the test's copy
#: (their schedules every minute; the heartbeat's from its last ping, period and grace
#: included). Shipped ``sla:`` values in alerts.yaml win where they are set.
DRILLED = {"dead_letters": ("sql_metric", "3m"), "demo_cache": ("redis_quota", "3m"),
           "demo_etl": ("heartbeat", "4m")}
#: The demo's quota is 10,000 commands a day; the Redis here is shared with other work,
#: so the copy's quota is at least this (:func:`quota_plan`) and the load crosses the
#: rule's own critical percent of it.
QUOTA_MIN = 100_000
QUOTA_HEADROOM = 20_000  # what other work may add before the injection, under warn %
#: The drilled alert instance of a rule with several (a redis_quota target's checks).
CHECK_LABELS = {"demo_cache": {"check": "quota"}}
PRIVATE_DB = 13
DEAD_LETTERS = 25
PING_EVERY = 10.0
HEALTHY_TIMEOUT = 240.0  # start-up (code servers on 2 loaded cores) and the first ticks


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


# ----- the setup: instance, workspace, the demo rules' copy, the demo database -----


@dataclass(frozen=True)
class QuotaPlan:
    limit: int  # the copy's quota: commands a day
    timezone: str  # the quota window's
    load: int  # commands the injection sends


@dataclass
class Chaos:
    folder: Path
    receiver_url: str
    redis_url: str
    quota: QuotaPlan
    serve_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def demo_db(self) -> Path:
        return self.folder / "demo.db"

    @property
    def timeline_url(self) -> str:
        return f"sqlite:///{self.folder / 'timeline.db'}"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DAGSTER_HOME=str(self.home),
                   ALERT_JOBS_RULES=str(self.folder / "alerts.yaml"),
                   ALERT_JOBS_DATABASE_URL=self.timeline_url, PYTHONUNBUFFERED="1")
        env.pop("ALERT_JOBS_LINK_SECRET", None)
        return env

    def rules(self) -> dict[str, Any]:
        """The demo rules file, reduced to the drilled rules and pointed at this setup."""
        demo = yaml.safe_load((ROOT / "alerts.yaml").read_text(encoding="utf-8"))
        checks: dict[str, list[dict[str, Any]]] = {}
        for name, (family, sla) in DRILLED.items():
            (rule,) = [r for r in demo["checks"][family] if r["name"] == name]
            rule.setdefault("sla", sla)
            checks.setdefault(family, []).append(rule)
        (dead,) = checks["sql_metric"]
        dead["database"] = f"sqlite:///{self.demo_db}"
        dead["schedule"] = "* * * * *"
        (cache,) = checks["redis_quota"]
        cache["url"] = self.redis_url
        cache["quota"] = {**cache["quota"], "limit": self.quota.limit,
                          "timezone": self.quota.timezone}
        cache["hit_rate_min_percent"] = None  # the shared server's hit rate is not ours
        cache["sla"] = DRILLED["demo_cache"][1]  # the shipped one is for a 5-minute schedule
        (etl,) = checks["heartbeat"]
        # Half the demo's period and grace (it is pinged every PING_EVERY seconds): the
        # page comes a minute sooner, and the shipped SLA still holds it.
        etl["period"], etl["grace"] = "30s", "30s"
        defaults = {**demo["defaults"], "receivers": ["chaos_hook"],
                    "redis_quota_schedule": "* * * * *",
                    "action_base_url": self.serve_url,
                    "dagster_url": f"http://127.0.0.1:{self.web_port}"}
        return {"version": 1, "defaults": defaults,
                "receivers": [{"name": "chaos_hook", "type": "webhook",
                               "url": self.receiver_url}],
                # alert quality starts today: no catch-up runs beside the drilled ones
                "quality": {"start_date": datetime.now(UTC).date().isoformat()},
                "heartbeats": demo.get("heartbeats", {}),
                "self_monitoring": {"instance_watch": False},
                "checks": checks}

    def sla(self, name: str) -> timedelta:
        for rules in self.rules()["checks"].values():
            for rule in rules:
                if rule["name"] == name:
                    return parse_duration(str(rule["sla"]))
        raise KeyError(name)

    def prepare(self) -> None:
        self.home.mkdir(parents=True)
        (self.home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
        (self.folder / "workspace.yaml").write_text(
            "load_from:\n  - python_module:\n      module_name: alert_jobs.definitions\n"
            f"      location_name: alert_jobs\n      working_directory: {ROOT}\n")
        (self.folder / "alerts.yaml").write_text(yaml.safe_dump(self.rules(), sort_keys=False))
        with sqlite3.connect(self.demo_db) as db:  # the demo's dead_letters table, empty
            db.executescript("""
                CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, queue TEXT, created_at TEXT);
                CREATE INDEX ix_dead_letters_created_at ON dead_letters (created_at);
            """)
        for argv in ([tool("dagster"), "instance", "migrate"],
                     [tool("alert-jobs"), "db", "upgrade"],
                     [tool("alert-jobs"), "rules", "validate", str(self.folder / "alerts.yaml")]):
            subprocess.run(argv, env=self.env, cwd=self.folder, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        return subprocess.Popen(argv, env=self.env, cwd=self.folder, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, name: str, chars: int = 2500) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def outbox(self) -> str:
        """The timeline's outbox rows: who raised each message (``run_id``: the run that
        must deliver it) and when it was queued and delivered."""
        engine = sa.create_engine(self.timeline_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT rule, receiver, run_id, created_at, delivered_at, attempts, "
                    "last_error FROM alert_outbox ORDER BY id")).all()
        except sa.exc.OperationalError as exc:
            return f"(unreadable: {exc})"
        finally:
            engine.dispose()
        return "\n".join(f"  {r.rule} → {r.receiver}: raised by run {r.run_id}, queued "
                         f"{r.created_at}, delivered {r.delivered_at} after {r.attempts} "
                         f"attempt(s) {r.last_error or ''}" for r in rows) or "  (empty)"

    def one(self, query: str) -> Any:
        engine = sa.create_engine(self.timeline_url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(query)).scalar()
        except sa.exc.OperationalError:  # a table not there yet, or the database busy
            return None
        finally:
            engine.dispose()




SCHEDULES_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
    __typename
    ... on PythonError { message }
    ... on RepositoryLocation { repositories {
        schedules { name scheduleState { status } }
        sensors { name sensorState { status } } } } } } } } }
"""


def webserver_states(base: str) -> dict[str, str]:
    """Schedule and sensor states as the webserver's GraphQL API reports them."""
    data = httpx.post(f"{base}/graphql", json={"query": SCHEDULES_QUERY}, timeout=60).json()
    (entry,) = data["data"]["workspaceOrError"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    (repo,) = location["repositories"]
    return {**{s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]},
            **{s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}}


def wait_for(what: str, done: Any, timeout: float, chaos: Chaos,
             procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:"
                            f"\n{chaos.tail(name)}")
        if done():
            return
        time.sleep(1)
    pytest.fail(f"not within {timeout:.0f} s: {what}\ndaemon log tail:\n{chaos.tail('daemon')}"
                f"\nserve log tail:\n{chaos.tail('serve', 1000)}")


def webserver_up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/server_info", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# ----- the failures -----------------------------------------------------------------


def insert_dead_letters(db: Path, count: int) -> None:
    now = datetime.now(UTC)
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO dead_letters (queue, created_at) VALUES (?, ?)",
                         [("payments", (now - timedelta(seconds=i)).strftime(FMT))
                          for i in range(count)])


def demo_cache_rule() -> dict[str, Any]:
    demo = yaml.safe_load((ROOT / "alerts.yaml").read_text(encoding="utf-8"))
    (rule,) = [r for r in demo["checks"]["redis_quota"] if r["name"] == "demo_cache"]
    return dict(rule)


def quota_plan(url: str) -> QuotaPlan:
    """The quota of the copy of ``demo_cache`` and the commands of the load.

    The rule counts from its first sample, except for a server started inside the
    quota's day: then every command since the start counts (``redis_quota.check``, the
    window's usage). The shared Redis here may have started today and carry every
    earlier run's load, so the copy's day starts at the last full hour (a fixed-offset
    zone whose midnight that is), after the server started: counting then begins at the
    first sample, and a fixed load crosses the rule's critical percent. A server younger
    than that hour: the limit keeps what it has processed (plus headroom) under the
    warning percent instead, and the load is larger.
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("server") | client.info("stats")
    finally:
        client.close()
    rule = demo_cache_rule()
    warn, critical = rule["warn_percent"] / 100, rule["critical_percent"] / 100
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    started = now - timedelta(seconds=float(info["uptime_in_seconds"]))
    offset = -hour.hour % 24  # hours east of UTC whose midnight is `hour`
    offset = offset - 24 if offset > 14 else offset
    zone = "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT+1 is UTC-1
    used = float(info["total_commands_processed"]) if started >= hour else 0.0
    limit = max(QUOTA_MIN, math.ceil((used + QUOTA_HEADROOM) / warn / 10_000) * 10_000)
    return QuotaPlan(limit, zone, math.ceil(critical * limit) + 1_000)


def redis_load(url: str, key: str, commands: int) -> None:
    """``commands`` real commands (pipelined INCRs of one private key)."""
    import redis

    client = redis.Redis.from_url(url, db=PRIVATE_DB)
    try:
        left = commands
        while left > 0:
            chunk = min(10_000, left)
            pipe = client.pipeline(transaction=False)
            for _ in range(chunk):
                pipe.incr(key)
            pipe.execute()
            left -= chunk
        client.delete(key)
    finally:
        client.close()


class Pinger:
    """The demo's heartbeat job: ``demo_etl`` pinged until :meth:`silence`."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.quiet = threading.Event()
        self.last_ping = 0.0
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if ping_until_accepted("demo_etl", self.base_url, deadline=HEALTHY_TIMEOUT,
                               should_stop=self.quiet.is_set) is None:
            return
        self.last_ping, self.accepted = time.time(), 1
        while not self.quiet.wait(PING_EVERY):
            if ping("demo_etl", base_url=self.base_url, timeout=5.0):
                self.last_ping, self.accepted = time.time(), self.accepted + 1

    def silence(self) -> float:
        """Stop pinging; returns the time of the last accepted ping."""
        self.quiet.set()
        self.thread.join(timeout=10)
        return self.last_ping


# ----- the test ---------------------------------------------------------------------


def test_three_real_failures_page_the_receiver_within_their_sla(
        tmp_path: Path, shared_redis_url: str) -> None:
    key = f"alert-jobs-chaos:{uuid.uuid4().hex}"
    plan = quota_plan(shared_redis_url)
    with arrival_receiver() as receiver:
        chaos = Chaos(tmp_path, receiver.url, shared_redis_url, plan)
        chaos.prepare()
        procs: dict[str, subprocess.Popen[bytes]] = {}
        pinger = Pinger(chaos.serve_url)
        try:
            procs["serve"] = chaos.start("serve", [tool("alert-jobs"), "serve", "--host",
                                                   "127.0.0.1", "--port", str(chaos.serve_port)])
            procs["daemon"] = chaos.start("daemon", [tool("dagster-daemon"), "run", "-w",
                                                     str(tmp_path / "workspace.yaml")])
            procs["webserver"] = chaos.start("webserver", [
                tool("dagster-webserver"), "-h", "127.0.0.1", "-p", str(chaos.web_port),
                "-w", str(tmp_path / "workspace.yaml")])
            pinger.thread.start()
            started = time.monotonic()
            web = f"http://127.0.0.1:{chaos.web_port}"
            wait_for("the webserver answers", lambda: webserver_up(web), HEALTHY_TIMEOUT,
                     chaos, procs)
            states = webserver_states(web)
            for name in ("sql_metric_every_minute_schedule", "redis_quota_schedule",
                         "heartbeat_sensor"):
                assert states.get(name) == "RUNNING", (name, states)

            # Healthy first: each rule evaluated ok, the Redis counted from a first
            # sample, the heartbeat up; and nothing paged (the negative control).
            def healthy() -> bool:
                return bool(
                    chaos.one("SELECT count(*) FROM alert_evaluations WHERE rule = "
                              "'dead_letters' AND status = 'ok'")
                    and chaos.one("SELECT count(*) FROM alert_redis_samples WHERE target = "
                                  "'demo_cache'")
                    and chaos.one("SELECT status FROM alert_heartbeats WHERE slug = "
                                  "'demo_etl'") == "up")

            wait_for("every drilled rule healthy (dead_letters ok, a first demo_cache "
                     "sample, demo_etl up)", healthy,
                     HEALTHY_TIMEOUT - (time.monotonic() - started), chaos, procs)
            assert all(receiver.first(name, labels=CHECK_LABELS.get(name)) is None
                       for name in DRILLED), (
                f"paged before any failure was injected: {receiver.seen()}\noutbox:\n"
                f"{chaos.outbox()}")

            # The three failures, at once.
            injected = time.time()
            insert_dead_letters(chaos.demo_db, DEAD_LETTERS)
            last_ping = pinger.silence()
            redis_load(shared_redis_url, key, plan.load)
            starts = {"dead_letters": injected, "demo_cache": injected,
                      "demo_etl": min(injected, last_ping)}
            slas = {name: chaos.sla(name) for name in DRILLED}
            deadline = max(starts[n] + slas[n].total_seconds() for n in DRILLED) + 20
            while time.time() < deadline and not all(
                    receiver.first(n, starts[n], CHECK_LABELS.get(n)) for n in DRILLED):
                time.sleep(1)
        finally:
            pinger.quiet.set()
            for name in ("daemon", "webserver", "serve"):
                if name in procs:
                    stop_process(procs[name], timeout=30)
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(shared_redis_url, db=PRIVATE_DB).delete(key)

        print(f"demo_cache quota {plan.limit:,} commands a day ({plan.timezone}); the load: "
              f"{plan.load:,} commands")
        problems = []
        for name in DRILLED:
            page = receiver.first(name, starts[name], CHECK_LABELS.get(name))
            sla = format_duration(slas[name])
            if page is None:
                problems.append(f"{name}: no page within its SLA ({sla})")
                print(f"{name} did not page (SLA {sla})")
                continue
            took = page.at - starts[name]
            print(f"{name} paged in {took:.0f} s (SLA {sla})")
            if took > slas[name].total_seconds():
                problems.append(f"{name}: paged in {took:.0f} s, over its SLA ({sla})")
        assert not problems, (
            "; ".join(problems) + f"\nreceived: {receiver.seen()}\noutbox:\n"
            f"{chaos.outbox()}\ndaemon log tail:\n{chaos.tail('daemon', 4000)}"
            f"\nserve log tail:\n{chaos.tail('serve', 1500)}")
