"""Benchmarks: scripts that print figures (`make bench`). Tests assert behaviour, not speed."""
