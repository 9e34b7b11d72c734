"""Use cases: each turns one fact into ledger writes and alerts, through the ports."""
