"""Dagster assets and asset checks, one module per check family."""
