"""The code location: one ``dg.Definitions`` per check family, merged, plus the shared parts.

Thin on purpose: each installed family builds its own assets, checks, schedules and
sensors from the rules file (:class:`alert_jobs.runtime.family.Family`); the operator
jobs and the delivery sensors come from ``alert_jobs.assets`` and ``alert_jobs.sensors``.
The rules file is read here to know which rules exist (one asset per rule, one run per
schedule tick for the rules that share it); thresholds are re-read at every run. A
broken rules file does not stop the code location: its last good copy is used, and the
heartbeat sensor alerts about it.
"""

from __future__ import annotations

import dagster as dg

from alert_jobs import assets, sensors
from alert_jobs.config import RulesFile, load_rules_or_last_good
from alert_jobs.runtime.family import installed_families
from alert_jobs.runtime.resources import TIMELINE_KEY, AlertJobsResource, ReceiversResource


def timeline_asset(upstream: list[dg.AssetKey]) -> dg.AssetSpec:
    """The timeline database as an asset, downstream of every rule asset that writes it."""
    return dg.AssetSpec(
        TIMELINE_KEY, group_name="alert_quality", deps=upstream, kinds={"sql"},
        description="The alert timeline database (events, evaluations, episodes), written "
                    "by every rule run and operator action.")


def _written_by(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Keys of the assets (not external sources) that ``defs`` materializes, but those
    that read the timeline (a family's report, e.g. the SLO budget report): they are
    downstream of it, not writers."""
    return [key for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
            and TIMELINE_KEY not in a.dependency_keys for key in a.keys]


def family_definitions(rules: RulesFile) -> dg.Definitions:
    """Every installed family's definitions, merged, with the timeline asset between
    the families that write it and those that read it."""
    writers: list[dg.Definitions] = []
    readers: list[dg.Definitions] = []
    for family in installed_families():
        (writers if family.writes_timeline else readers).append(family.definitions(rules))
    upstream = [key for defs in writers for key in _written_by(defs)]
    return dg.Definitions.merge(*writers, dg.Definitions(assets=[timeline_asset(upstream)]),
                                *readers)


def build_definitions(rules_file: str | None = None) -> dg.Definitions:
    resource = AlertJobsResource(rules_file=rules_file) if rules_file else AlertJobsResource()
    rules = load_rules_or_last_good(resource.rules_file).rules  # a typo must not stop alerts
    return dg.Definitions.merge(
        family_definitions(rules),
        assets.definitions(rules),
        sensors.definitions(),
        # Receivers appear in the UI's resources (secrets as env variable names only).
        # Every run, scheduled or launched by hand, executes its steps in the run worker
        # itself: a check's step is milliseconds of work, and the default multiprocess
        # executor would start (and import the code location in) a second process for it.
        dg.Definitions(resources={"alert_jobs": resource,
                                  "receivers": ReceiversResource.of(rules)},
                       executor=dg.in_process_executor),
    )


defs = build_definitions()
