"""Event models: what arrives from AWS, validated with pydantic and turned into the core's facts."""
