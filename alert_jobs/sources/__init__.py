"""I/O adapters that read what checks judge (SQL, Redis INFO, HTTP usage APIs)."""
