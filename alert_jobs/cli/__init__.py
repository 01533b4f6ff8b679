"""The ``alert-jobs`` command line: :func:`alert_jobs.cli.main.main`.

Top-level commands live in :mod:`~alert_jobs.cli.alerts` (status, ack, silences, …)
and :mod:`~alert_jobs.cli.admin` (check, deliver, rules, db, notify, serve); each
check family adds its own (``families/<family>/cli.py``).
"""
