"""Code locations that fail to load, as a real dagster-webserver reports them.

One webserver on 127.0.0.1 loads a workspace of a tiny good location and two copies of
a module that imports a package that is not installed; the GraphQL answer becomes
statuses, then observations. Fixing one copy and reloading it, and dropping the other
from the workspace, resolve both alerts. Bad answers (no server, HTTP 500, HTML,
GraphQL errors, a hang) come from real local servers and must give a clear
LocationQueryError. location_observations itself is pure and tested without a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.core.model import AlertRecord, AlertState, Status, fingerprint
from alert_jobs.families.heartbeat.config import LOCATION_FAILED
from alert_jobs.families.heartbeat.watch_locations import (
    ERROR_LIMIT,
    LocationQueryError,
    LocationStatus,
    error_text,
    location_observations,
    location_statuses,
    open_location_names,
)
from tests.conftest import free_port
from tests.processes import Processes, graphql, tool, webserver_up

HERE = Path(__file__).parent
MISSING = "ModuleNotFoundError: No module named 'nonexistent_dep_for_test'"
DAGSTER_URL = "http://dagster.example:3000"


def fp(name: str) -> str:
    return fingerprint(LOCATION_FAILED, {"location": name})


# ----- a real webserver ---------------------------------------------------------------


def _workspace(folder: Path, names: list[str]) -> None:
    lines = ["load_from:"] + [
        f"  - python_file: {{relative_path: {name}.py, location_name: {name}}}"
        for name in names]
    (folder / "workspace.yaml").write_text("\n".join(lines) + "\n")


@pytest.mark.long_running
def test_a_location_that_fails_to_import_alerts_and_resolves_when_fixed_or_removed(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(HERE / "location_good.py", tmp_path / "good.py")
    for name in ("broken", "gone"):
        shutil.copy(HERE / "location_broken.py", tmp_path / f"{name}.py")
    _workspace(tmp_path, ["good", "broken", "gone"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = Processes(tmp_path, env)
    procs.start("webserver", [tool("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                              "-w", str(tmp_path / "workspace.yaml")])
    try:
        procs.wait_for("the webserver answers", lambda: webserver_up(base), timeout=90)
        statuses = procs.wait_for(
            "every location loaded or failed",
            lambda: (s := location_statuses(f"{base}/graphql", timeout=10))
            and not any(x.loading for x in s) and s, timeout=60)

        by_name = {s.name: s for s in statuses}
        assert [s.name for s in statuses] == ["good", "broken", "gone"]
        assert by_name["good"] == LocationStatus("good", loaded=True, error=None)
        broken = by_name["broken"]
        assert not broken.loaded and broken.error is not None
        # The line names the missing module first, then Dagster's wrapper around it.
        assert broken.error.startswith(MISSING + " (raised as dagster._core.errors."
                                       "DagsterImportError"), broken.error
        assert len(broken.error) <= ERROR_LIMIT

        active: set[str] = set()
        firing = location_observations(statuses, active, dagster_url=DAGSTER_URL)
        assert [(o.rule, o.status, o.labels) for o in firing] == [
            (LOCATION_FAILED, Status.ALERT, {"location": "broken"}),
            (LOCATION_FAILED, Status.ALERT, {"location": "gone"})]
        alert = firing[0]
        assert alert.summary.startswith(f"Code location broken fails to load: {MISSING}")
        assert alert.summary.endswith(f"({DAGSTER_URL}/deployment/locations)")
        assert alert.seen == broken.error and alert.seen.startswith(MISSING)
        assert alert.expected == "the code location to load" and alert.value == 1.0
        assert active == {fp("broken"), fp("gone")}

        # Fix one copy and reload it, as the UI's "Reload" button does; drop the other
        # from the workspace and reload the workspace.
        shutil.copy(HERE / "location_good.py", tmp_path / "broken.py")
        reloaded = graphql(base, """mutation($name: String!) {
              reloadRepositoryLocation(repositoryLocationName: $name) { __typename } }""",
                           {"name": "broken"})
        assert reloaded["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry"
        _workspace(tmp_path, ["good", "broken"])
        graphql(base, "mutation { reloadWorkspace { __typename } }")
        after = procs.wait_for(
            "broken loads and gone left the workspace",
            lambda: (s := location_statuses(f"{base}/graphql", timeout=10))
            and [(x.name, x.loaded) for x in s] == [("good", True), ("broken", True)]
            and s, timeout=60)

        resolved = location_observations(after, active, dagster_url=DAGSTER_URL,
                                         open_locations={"broken", "gone"})
        assert [(o.status, o.labels, o.summary) for o in resolved] == [
            (Status.OK, {"location": "broken"}, "Code location broken loads again"),
            (Status.OK, {"location": "gone"},
             "Code location gone is no longer in the workspace (removed)")]
        assert active == set()
        # Resolved once: the next look at the same workspace says nothing.
        assert location_observations(after, active, dagster_url=DAGSTER_URL,
                                     open_locations={"broken", "gone"}) == []

        # graphql_url set to the UI's address instead of its /graphql endpoint.
        with pytest.raises(LocationQueryError, match=r"answered HTTP 405"):
            location_statuses(f"{base}/", timeout=10)
    finally:
        procs.stop_all()


# ----- bad answers from real local servers -------------------------------------------


@contextlib.contextmanager
def answering(status: int, body: bytes, content_type: str = "application/json",
              delay: float = 0.0) -> Iterator[str]:
    """A local HTTP server answering every POST with ``status`` and ``body``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may have given up (timeout)
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/graphql"
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_webserver_is_a_clear_error_without_the_credentials() -> None:
    port = free_port()  # bound, then closed: nothing listens there
    with pytest.raises(LocationQueryError) as info:
        location_statuses(f"http://watcher:s3cret@127.0.0.1:{port}/graphql?token=t0k",
                          timeout=2)
    message = str(info.value)
    assert f"cannot reach the Dagster webserver at http://127.0.0.1:{port}/graphql" in message
    assert "ConnectError" in message and "self_monitoring.graphql_url" in message
    assert "s3cret" not in message and "t0k" not in message and "watcher" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no httpx chain


def test_a_url_without_a_scheme_is_a_clear_error() -> None:
    with pytest.raises(LocationQueryError, match="missing an 'http://' or 'https://'"):
        location_statuses("dagster-webserver:3000/graphql", timeout=2)


def refusal(status: int, body: bytes, content_type: str = "application/json") -> str:
    """The LocationQueryError message for one answer of a real local server."""
    with answering(status, body, content_type) as url, \
            pytest.raises(LocationQueryError) as info:
        location_statuses(url, timeout=5)
    assert info.value.__cause__ is None
    return str(info.value)


def test_http_500_is_a_clear_error() -> None:
    message = refusal(500, b"Internal Server Error", "text/plain")
    assert message.endswith("answered HTTP 500 to the code-location query"), message


def test_an_answer_that_is_not_json_is_a_clear_error() -> None:
    message = refusal(200, b"<html><body>Dagster</body></html>", "text/html")
    assert message.endswith("answered with something that is not JSON (text/html); is "
                            "self_monitoring.graphql_url its /graphql endpoint?"), message


def test_graphql_errors_are_a_clear_error() -> None:
    # The shape Dagster's webserver gives a query it cannot run (HTTP 400), e.g. an
    # older webserver without a field this module asks for.
    body = (b'{"data":null,"errors":[{"message":"Cannot query field \'causes\' on type '
            b'\'PythonError\'.","locations":[{"line":9,"column":51}]}]}')
    assert refusal(400, body).endswith(
        "answered HTTP 400 to the code-location query: Cannot query field 'causes' on "
        "type 'PythonError'.")
    assert refusal(200, b'{"data":null,"errors":[{"message":"boom\\nline 2"}]}').endswith(
        "answered HTTP 200 to the code-location query: boom")


def test_a_workspace_error_and_an_unexpected_answer_are_clear_errors() -> None:
    body = (b'{"data":{"workspaceOrError":{"__typename":"PythonError",'
            b'"message":"dagster._core.errors.DagsterError: no workspace\\n"}}}')
    assert refusal(200, body).endswith(
        "could not list its workspace: dagster._core.errors.DagsterError: no workspace")
    assert refusal(200, b'{"data":{}}').endswith("has no workspace")
    assert refusal(200, b"[1, 2]").endswith("is not a GraphQL response")


def test_a_webserver_that_hangs_is_a_timeout_error() -> None:
    with answering(200, b"{}", delay=1.5) as url:
        started = time.monotonic()
        with pytest.raises(LocationQueryError,
                           match=r"did not answer within 0\.3 s "
                                 r"\(self_monitoring\.graphql_timeout\)"):
            location_statuses(url, timeout=0.3)
        assert time.monotonic() - started < 1.4


def test_a_good_answer_from_a_plain_server_parses() -> None:
    """The positive control of the bad-answer tests: the same server, a good body."""
    body = (b'{"data":{"workspaceOrError":{"__typename":"Workspace","locationEntries":['
            b'{"name":"a","loadStatus":"LOADED","locationOrLoadError":'
            b'{"__typename":"RepositoryLocation"}},'
            b'{"name":"b","loadStatus":"LOADING","locationOrLoadError":null}]}}}')
    with answering(200, body) as url:
        assert location_statuses(url, timeout=5) == [
            LocationStatus("a", loaded=True), LocationStatus("b", loaded=False)]


# ----- the error line --------------------------------------------------------------


def test_the_error_line_is_the_root_cause_then_the_wrapper() -> None:
    # As dagster-webserver 1.13 answered for a file that raises at import time.
    error = {"__typename": "PythonError",
             "message": "dagster._core.errors.DagsterUserCodeLoadError: Error occurred "
                        "during the loading of Dagster definitions in\nexecutable_path=...\n",
             "cause": {"message": "RuntimeError: rules file unreadable\nsecond line\n"},
             "causes": [{"message": "RuntimeError: rules file unreadable\nsecond line\n"}]}
    assert error_text(error) == (
        "RuntimeError: rules file unreadable (raised as dagster._core.errors."
        "DagsterUserCodeLoadError: Error occurred during the loading of Dagster "
        "definitions in)")
    # The deepest of several causes is the root.
    chained = {"message": "Outer\n", "causes": [{"message": "Middle"}, {"message": "Inner"}]}
    assert error_text(chained) == "Inner (raised as Outer)"
    # Only ``cause`` (no ``causes``), no cause at all, blank lines first, nothing at all.
    assert error_text({"message": "A", "cause": {"message": "B"}}) == "B (raised as A)"
    assert error_text({"message": "\n\n  SyntaxError: bad  \nmore"}) == "SyntaxError: bad"
    assert error_text({"message": None, "causes": []}) == "no error message"
    long = error_text({"message": "x" * 1000})
    assert len(long) == ERROR_LIMIT and long.endswith("…")


# ----- observations (pure) -----------------------------------------------------------


def test_a_loading_location_changes_nothing_while_a_failed_one_alerts() -> None:
    active = {fp("slow")}
    statuses = [LocationStatus("slow", loaded=False), LocationStatus("ok", loaded=True),
                LocationStatus("bad", loaded=False, error="ImportError: x")]
    out = location_observations(statuses, active, dagster_url="http://d:3000/")
    # The positive control beside "nothing": the failed location in the same call alerts.
    assert [(o.status, o.labels["location"]) for o in out] == [(Status.ALERT, "bad")]
    assert out[0].summary == ("Code location bad fails to load: ImportError: x "
                              "(http://d:3000/deployment/locations)")
    assert out[0].details == {"location": "bad",
                              "locations_url": "http://d:3000/deployment/locations"}
    assert active == {fp("slow"), fp("bad")}  # slow's open alert stays open


def test_a_loading_location_that_is_open_is_not_resolved_as_removed() -> None:
    active = {fp("slow")}
    assert location_observations([LocationStatus("slow", loaded=False)], active,
                                 dagster_url=DAGSTER_URL, open_locations={"slow"}) == []
    assert active == {fp("slow")}


def test_a_failed_location_alerts_again_each_look_and_loads_again_once() -> None:
    active: set[str] = set()
    bad = [LocationStatus("etl", loaded=False, error="E")]
    assert [o.status for o in location_observations(bad, active, dagster_url="u")] == \
        [Status.ALERT]
    assert [o.status for o in location_observations(bad, active, dagster_url="u")] == \
        [Status.ALERT]
    good = [LocationStatus("etl", loaded=True)]
    assert [(o.status, o.value) for o in location_observations(good, active,
                                                               dagster_url="u")] == \
        [(Status.OK, 0.0)]
    assert location_observations(good, active, dagster_url="u") == []


def test_a_removed_location_resolves_only_when_its_alert_is_open() -> None:
    active = {fp("old")}
    out = location_observations([LocationStatus("ok", loaded=True)], active,
                                dagster_url="u", open_locations=["old", "never-alerted"])
    assert [(o.status, o.labels) for o in out] == [(Status.OK, {"location": "old"})]
    assert active == set()


def test_open_location_names_reads_only_this_rules_alerts() -> None:
    alerts = [AlertRecord(fp("a"), LOCATION_FAILED, {"location": "a"}, AlertState.FIRING),
              AlertRecord("x", "dagster_run_failed", {"location": "b", "job": "j"},
                          AlertState.FIRING),
              AlertRecord("y", LOCATION_FAILED, {}, AlertState.FIRING)]
    assert open_location_names(alerts) == {"a"}
