"""The runtime: supervisor, per-device runners, schedule and backoff."""
