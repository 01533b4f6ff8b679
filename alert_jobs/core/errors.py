"""The one error type sources raise: its message is safe to show, store and send."""


class SourceError(RuntimeError):
    """A source could not be read. The message names the target, never a secret."""
