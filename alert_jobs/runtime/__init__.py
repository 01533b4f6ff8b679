"""What every check family's run shares: the path from observations to the engine and out
to receivers, the family seam, and the Dagster resources.

* :mod:`~alert_jobs.runtime.evaluate`: observations → messages → engine decisions;
* :mod:`~alert_jobs.runtime.deliver`: outbox → receivers, and "receiver broken" alerts;
* :mod:`~alert_jobs.runtime.actions`: ack, escalation, test notifications;
* :mod:`~alert_jobs.runtime.family`: the :class:`~alert_jobs.runtime.family.Family` seam;
* :mod:`~alert_jobs.runtime.resources`: the Dagster resources (the one module here that
  imports Dagster);
* :mod:`~alert_jobs.runtime.commands`: what the ``alert-jobs`` commands share.
"""
