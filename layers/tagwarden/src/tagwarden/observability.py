"""The one logger, metrics and tracer every function shares (Powertools, configured from the environment)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="tagwarden")
metrics = Metrics(namespace="Tagwarden")
tracer = Tracer(service="tagwarden")
