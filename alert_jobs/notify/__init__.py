"""Notifiers: render a decision into the message standard and deliver it via the outbox."""
