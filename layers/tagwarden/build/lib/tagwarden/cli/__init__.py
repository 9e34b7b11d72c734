"""The `tagwarden` command: read the ledger (history, check, pin), seed it (backfill) and replay events.

Importing this package is cheap: typer, rich and boto3 are imported by `tagwarden.cli.main` and the
commands, never here, so the Lambda layer (which ships the package without the CLI's dependencies) can
import `tagwarden` freely.
"""
