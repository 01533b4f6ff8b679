"""Alert quality: per-episode facts, SQL rollups, the monthly review and its report."""
