"""Who may read and act on the responder pages: accounts, sessions, CSRF, throttling."""

from alert_jobs.http.auth.guard import (
    Auth,
    FormRefused,
    RequireSignIn,
    User,
    checked_form,
    current_user,
)
from alert_jobs.http.auth.settings import AuthSettings, AuthSettingsError

__all__ = ["Auth", "AuthSettings", "AuthSettingsError", "FormRefused", "RequireSignIn", "User",
           "checked_form", "current_user"]
