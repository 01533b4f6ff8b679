"""Pure check computations: numbers in, :class:`~alert_jobs.model.Observation` out. No I/O."""
