"""One package per check family; each is registered as an ``alert_jobs.families`` entry
point (``pyproject.toml``) and never imports another family.

A family package holds, as far as it needs them: ``config.py`` (its rule model and
``SECTION``), ``check.py`` (pure judging: numbers in, observations out), ``source.py``
(reading what it checks), ``store.py`` (its own state, tables included), ``run.py``
(one evaluation end to end), ``cli.py`` (its ``alert-jobs`` commands) and
``definitions.py`` (its Dagster definitions); ``__init__.py`` exposes ``FAMILY``
(:class:`alert_jobs.runtime.family.Family`). The README's "Adding a check family"
walks through a minimal one.
"""
