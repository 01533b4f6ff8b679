"""Receivers: render a group notification in the message standard and send it.

One module per receiver type, each built from its config model
(:mod:`alert_jobs.notify.registry`); the shared rendering helpers are in
:mod:`~alert_jobs.notify.contract` and :mod:`~alert_jobs.notify.render`, concurrent
sending and retry timing in :mod:`~alert_jobs.notify.send`, signed action links in
:mod:`~alert_jobs.notify.links`. Nothing here touches the database or Dagster.
"""
