"""``alert-jobs serve``: heartbeat pings, signed action links, ``/metrics``, ``/healthz``.

Starlette, served by uvicorn; :func:`alert_jobs.http.app.create_app` builds the app.
"""
