"""`make demo`: the mutant-tag attack caught end to end, on embedded AWS backends (no account needed)."""
