"""Dagster sensors (light ticks, cursors) and schedule builders."""
