"""The pure domain core: images, tags, digests, scans, detection rules and alerts (no AWS, no event shapes)."""
