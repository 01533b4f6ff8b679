"""What ``alert-jobs`` prints: a closed pipe ends quietly, and cut text says it is cut.

The pipe tests run the real CLI in a real shell pipeline (``| head -1`` under
``pipefail``), with enough alerts that the output cannot fit in the pipe's buffer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alert_jobs.cli.alerts import LAST_CHECK_WIDTH
from alert_jobs.cli.main import EXIT_PIPE, main
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.runtime.commands import clip
from alert_jobs.store import Timeline

ROOT = Path(__file__).resolve().parents[2]
LONG = ("Expected under 7,000 commands (70 % of 10,000/day) today (UTC); used 5,210 by "
        "14:00 at 2.5 ops/s, projected 12,400 by 24:00, and then some more words")


def _fill(url: str, n: int) -> None:
    timeline = Timeline(url)
    try:
        policy = RulePolicy(rule="busy", receivers=("console",))
        items = [(Observation("busy", Status.ALERT, {"shard": f"s{i:05d}"}, None, summary=LONG),
                  policy, None) for i in range(n)]
        timeline.alerts.process_many(items)
    finally:
        timeline.dispose()


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A timeline with 600 firing alerts: ``status`` prints ~95 kB, far past the 64 kB
    a pipe buffers, so ``head -1`` closing its end really breaks the writer's pipe."""
    url = f"sqlite:///{tmp_path_factory.mktemp('crowded') / 't.db'}"
    _fill(url, 600)
    return url


def _piped(url: str, *args: str) -> tuple[int, int, str, str]:
    """``alert-jobs ARGS | head -1`` in bash with pipefail: (pipeline status, alert-jobs'
    own status, what head printed, alert-jobs' stderr)."""
    err = Path(os.environ.get("TMPDIR", "/tmp")) / f"alert-jobs-stderr-{os.getpid()}.txt"
    cli = " ".join([sys.executable, "-m", "alert_jobs.cli.main", *args])
    # $? and PIPESTATUS expand together, both still about the pipeline.
    script = (f"set -o pipefail; {cli} 2>{err} | head -1; "
              f"echo \"rc=$? own=${{PIPESTATUS[0]}}\" >&2")
    env = {**os.environ, "ALERT_JOBS_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    status = dict(part.split("=") for part in proc.stderr.strip().splitlines()[-1].split())
    stderr = err.read_text()
    err.unlink()
    return int(status["rc"]), int(status["own"]), proc.stdout, stderr


@pytest.mark.parametrize("args", [["status"], ["status", "--json"],
                                  ["timeline", "--limit", "5000"]])
def test_closed_pipe_ends_quietly(crowded: str, args: list[str]) -> None:
    rc, own, out, err = _piped(crowded, *args)
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert own == EXIT_PIPE == 141  # the pipe did break: this is not a run that fit
    assert rc == 141  # pipefail reports it, as for `yes | head -1`
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize("args", [["--help"], ["status"]])
def test_short_output_into_a_closed_pipe(tmp_path: Path, args: list[str]) -> None:
    """Output that fits the pipe's buffer: whether the reader left before the final flush
    (141) or after (0) is a race, but either way nothing is printed on stderr."""
    rc, own, out, err = _piped(f"sqlite:///{tmp_path / 'empty.db'}", *args)
    assert err == ""
    assert own in (0, EXIT_PIPE) and rc == own
    assert len(out.splitlines()) == 1


def test_another_broken_pipe_is_not_swallowed(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """Only a closed *stdout* is "the reader left": a pipe or socket the command itself
    was writing to that broke is an error, raised as such."""
    import alert_jobs.cli.alerts as alerts

    def broken(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe (a subprocess the command fed)")

    monkeypatch.setattr(alerts, "cmd_status", broken)
    with pytest.raises(BrokenPipeError):
        main(["--database-url", f"sqlite:///{tmp_path / 't.db'}", "status"])


def test_whole_output_without_a_pipe_is_unchanged(crowded: str) -> None:
    """Positive control: read to the end, the same command prints every alert, exit 0."""
    env = {**os.environ, "ALERT_JOBS_DATABASE_URL": crowded, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "alert_jobs.cli.main", "status"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len([line for line in proc.stdout.splitlines() if " busy " in line]) == 600


def test_clip() -> None:
    assert clip("short", 10) == "short"
    assert clip("exactly10!", 10) == "exactly10!"
    assert clip("one two three four", 10) == "one two t…"
    assert len(clip(LONG, 80)) == 80 and clip(LONG, 80).endswith("…")
    assert clip("a\nb\n  c", 20) == "a b c"  # one table row stays one line


def test_status_last_check_marks_a_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERT_JOBS_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 't.db'}"
    timeline = Timeline(url)
    try:
        policy = RulePolicy(rule="r", receivers=("console",))
        timeline.alerts.process_many([
            (Observation("r", Status.ALERT, {"k": "long"}, None, summary=LONG), policy, None),
            (Observation("r", Status.ALERT, {"k": "short"}, None, summary="3 dead letters"),
             policy, None)])
    finally:
        timeline.dispose()
    assert main(["--database-url", url, "--rules", str(tmp_path / "none.yaml"), "status"]) == 0
    out = capsys.readouterr().out
    cut = LONG[:LAST_CHECK_WIDTH - 1].rstrip() + "…"
    assert out.count(cut) == 1 and LONG not in out
    assert any(line.endswith("  3 dead letters") for line in out.splitlines())  # not cut
