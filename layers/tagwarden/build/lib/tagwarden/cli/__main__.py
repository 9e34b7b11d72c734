"""`python -m tagwarden.cli`, for when the console script is not on PATH."""

from tagwarden.cli.main import app

app(prog_name="tagwarden")
