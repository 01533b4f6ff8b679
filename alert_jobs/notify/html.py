"""HTML escaping the way the product has always written it, for every jinja2 template.

jinja2's autoescape writes quotes as ``&#34;`` and ``&#39;``; alert-jobs' HTML (email,
the monthly review, the action pages) has always used ``html.escape``'s ``&quot;`` and
``&#x27;``, which golden files and mail clients' threading have seen. Templates keep
autoescape on and pass every ``{{ value }}`` through :func:`escape` as their
environment's ``finalize``.
"""

from __future__ import annotations

import html

from markupsafe import Markup


def escape(value: object) -> Markup:
    """Escape like ``html.escape``; markup (a macro's output) is escaped already."""
    if hasattr(value, "__html__"):
        return Markup(value)
    return Markup(html.escape(str(value)))
