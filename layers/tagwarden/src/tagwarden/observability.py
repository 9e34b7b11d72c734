"""The one logger and metrics every function and the command share (Powertools, configured from the environment).

The functions' X-Ray tracer is not here but in their entry modules (`functions/*/app.py`): the core and the
command never trace, and importing the X-Ray SDK would cost every command more than boto3 itself does.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="tagwarden")
metrics = Metrics(namespace="Tagwarden")
