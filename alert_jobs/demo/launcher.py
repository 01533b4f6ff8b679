"""``make run``: prepare the demo, start its processes, and stop them cleanly on Ctrl-C.

It replaces a shell line that started everything with ``&`` and ``trap 'kill 0'``: on
Ctrl-C the terminal sent SIGINT to every process at once (a KeyboardInterrupt traceback
from each Python process), ``kill 0`` then hit make itself (make's "Segmentation fault"),
and the daemon, still alive while the others died, could launch a run mid-shutdown.

Here every child runs in its own session, so the terminal's Ctrl-C reaches only this
launcher (and make). The launcher then stops them in order, each with a timeout:

1. ``dagster-daemon`` first, alone: once it has exited no schedule, sensor or queued
   run can launch anything;
2. then everything else at once: ``dagster-webserver``, ``alert-jobs serve`` and the
   demo's own processes (heartbeat pinger, data feed, Redis traffic), while the runs the
   daemon launched before get a few seconds to finish (their workers are in the
   daemon's process group, which is interrupted and then killed after that).

A process that ignores SIGTERM past its timeout is killed with its whole process group.
The launcher exits 0 after a requested stop, 1 if a process it needs died on its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

# How long each stage may take before its processes are killed.
DAEMON_STOP_SECONDS = 20.0
OTHERS_STOP_SECONDS = 10.0  # also what runs launched before the stop get to finish


@dataclass
class Child:
    """One process of the demo, in its own session and process group."""

    name: str
    argv: list[str]
    essential: bool = True  # its death on its own stops the demo
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(self.argv, env=env, cwd=cwd, start_new_session=True,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def group_alive(self) -> bool:
        """Any process left in its group (the daemon's run workers and code servers)."""
        if self.proc is None:
            return False
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        self.proc.poll()  # reap the leader if it has exited
        return True

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()


@dataclass
class Settings:
    home: Path
    rules: Path
    workspace: Path
    host: str = "127.0.0.1"
    port: int = 3000
    serve_port: int = 8787
    redis_port: int = 6390
    feed_every: float = 15.0
    ping_every: float = 30.0
    commands_per_second: float = 10.0

    @property
    def serve_url(self) -> str:
        return f"http://{self.host}:{self.serve_port}"


def tool(name: str) -> str:
    """A console script of this environment (beside its Python), else from PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def children(s: Settings) -> list[Child]:
    """The demo's processes in start order; they are stopped in :func:`stop_order`."""
    py = [sys.executable, "-m", "alert_jobs.demo"]
    return [
        Child("redis", [*py, "redis", str(s.redis_port), "--commands-per-second",
                        str(s.commands_per_second)], essential=False),
        Child("serve", [tool("alert-jobs"), "serve", "--host", s.host, "--port",
                        str(s.serve_port)]),
        Child("feed", [*py, "feed", str(s.home / "demo.db"), "--every", str(s.feed_every)],
              essential=False),
        Child("heartbeats", [*py, "heartbeats", s.serve_url, "--every", str(s.ping_every)],
              essential=False),
        Child("daemon", [tool("dagster-daemon"), "run", "-w", str(s.workspace)]),
        Child("webserver", [tool("dagster-webserver"), "-h", s.host, "-p", str(s.port),
                            "-w", str(s.workspace)]),
    ]


def stop_order(kids: Sequence[Child]) -> tuple[list[Child], list[Child]]:
    """The two stages: the daemon alone, then everything else at once."""
    first = [c for c in kids if c.name == "daemon"]
    return first, [c for c in kids if c not in first]


@dataclass
class Launcher:
    settings: Settings
    env: dict[str, str]
    cwd: Path
    kids: list[Child] = field(default_factory=list)
    stop_requested: bool = False
    stopped_at: float | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self.stopped_at = time.monotonic()
            print(f"\nalert-jobs demo: stopping ({signal.Signals(signum).name}): Dagster "
                  "daemon first, then the rest", flush=True)

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def start(self) -> None:
        self.kids = children(self.settings)
        for child in self.kids:
            if self.stop_requested:
                break
            child.start(self.env, self.cwd)

    def wait(self) -> int:
        """Until a stop is requested (0) or an essential process dies on its own (1)."""
        while not self.stop_requested:
            for child in self.kids:
                if child.proc is not None and not child.alive() and child.essential:
                    print(f"alert-jobs demo: {child.name} exited with code "
                          f"{child.proc.returncode}; stopping the rest", flush=True)
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        """Daemon first (nothing is launched once it has exited), then the rest at once
        while the runs it already launched get as long to finish."""
        daemon, others = stop_order(self.kids)
        for child in daemon:
            child.signal(signal.SIGTERM)
        _wait_all(daemon, DAEMON_STOP_SECONDS, group=False)
        for child in daemon:
            if child.alive():  # stuck: kill it, so it cannot launch anything later
                child.kill_group()
        if daemon and self.stop_requested:
            took = time.monotonic() - (self.stopped_at or time.monotonic())
            print(f"alert-jobs demo: Dagster daemon stopped after {took:.1f} s; no run is "
                  "launched from here on", flush=True)
        for child in others:
            child.signal(signal.SIGTERM)
        _wait_until(lambda: not any(c.alive() for c in others)
                    and not any(c.group_alive() for c in daemon), OTHERS_STOP_SECONDS)
        # Runs still going are interrupted (Dagster marks them failed), then killed.
        for child in daemon:
            if child.group_alive():
                _signal_group(child, signal.SIGTERM)
        _wait_all(daemon, 5.0, group=True)
        for child in self.kids:
            if child.group_alive():
                child.kill_group()

    def run(self) -> int:
        self.install_signals()
        code = 1
        try:
            self.start()
            code = self.wait()
        finally:
            # Signals that arrive while stopping are already handled: keep stopping.
            self.stop()
        took = time.monotonic() - (self.stopped_at or time.monotonic())
        print(f"alert-jobs demo: stopped in {took:.1f} s", flush=True)
        return code


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the launcher dies, even by ``kill -9``
    (Linux), so a killed launcher leaves no demo process behind in its own session."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal_group(child: Child, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def _wait_until(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


def _wait_all(kids: Sequence[Child], timeout: float, *, group: bool) -> None:
    _wait_until(lambda: not any(c.group_alive() if group else c.alive() for c in kids),
                timeout)


def prepare(s: Settings, env: dict[str, str], cwd: Path) -> None:
    """What runs before the processes start: the instance folder, the demo data, the
    timeline schema, a valid rules file and the alert history."""
    from alert_jobs.demo.data import seed, seed_quality_history

    s.home.mkdir(parents=True, exist_ok=True)
    instance = s.home / "dagster.yaml"
    if not instance.exists() and (cwd / "dagster.yaml").exists():
        shutil.copyfile(cwd / "dagster.yaml", instance)
    print(f"demo data written to {seed(s.home / 'demo.db')}", flush=True)
    # `dagster instance migrate` creates the instance's SQLite storage once, here: a new
    # DAGSTER_HOME left to the daemon and the webserver, which start together, can end
    # with two alembic heads in its schedule storage (both stamp it), and then no code
    # server loads ("Version table 'alembic_version' has more than one head present").
    subprocess.run([tool("dagster"), "instance", "migrate"], env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)
    for argv in ([tool("alert-jobs"), "db", "upgrade"],
                 [tool("alert-jobs"), "rules", "validate", str(s.rules)]):
        subprocess.run(argv, env=env, cwd=cwd, check=True)
    from alert_jobs.store import Timeline

    os.environ.update(env)  # the timeline under this DAGSTER_HOME
    episodes = seed_quality_history(Timeline())
    if episodes:
        print(f"demo alert history: {episodes} past alerts for the alert-quality assets",
              flush=True)


USERS_ENV = "ALERT_JOBS_USERS"
DEMO_USER = "demo"


def demo_account(env: dict[str, str], home: Path, cwd: Path) -> str | None:
    """Sign-in for the responder pages: unless ``$ALERT_JOBS_USERS`` is set, a ``demo``
    account whose password is made once and kept in ``<home>/demo-password`` (mode
    0600), so restarting the demo keeps it. Hashed by ``alert-jobs users hash``, as a
    user would make theirs. Returns the password it set, else ``None``."""
    if env.get(USERS_ENV):
        return None
    import secrets

    path = home / "demo-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12) + "\n")
        path.chmod(0o600)
    password = path.read_text().strip()
    done = subprocess.run([tool("alert-jobs"), "users", "hash", DEMO_USER, "--stdin"],
                          input=password + "\n", env=env, cwd=cwd, check=True,
                          capture_output=True, text=True)
    env[USERS_ENV] = done.stdout.strip()
    return password


def main(s: Settings, *, cwd: Path | None = None) -> int:
    cwd = cwd or Path.cwd()
    env = dict(os.environ, DAGSTER_HOME=str(s.home.resolve()), ALERT_JOBS_RULES=str(s.rules),
               PYTHONUNBUFFERED="1")
    env.setdefault("ALERT_JOBS_LINK_SECRET", _secret())
    launcher = Launcher(s, env, cwd)
    launcher.install_signals()
    try:
        prepare(s, env, cwd)
        password = demo_account(env, s.home, cwd)
    except subprocess.CalledProcessError as exc:
        print(f"alert-jobs demo: {' '.join(map(str, exc.cmd[1:]))} failed", flush=True)
        return 2
    if launcher.stop_requested:
        return 0
    print(f"alert-jobs: Dagster UI on http://{s.host}:{s.port}, the responder's pages "
          f"on {s.serve_url}/alerts (Ctrl-C stops all)", flush=True)
    if password is not None:
        print(f"alert-jobs: sign in as {DEMO_USER!r} with the password {password!r} "
              f"(kept in {s.home / 'demo-password'}; set {USERS_ENV} for your own accounts)",
              flush=True)
    return launcher.run()


def _secret() -> str:
    import secrets

    return secrets.token_urlsafe(24)
