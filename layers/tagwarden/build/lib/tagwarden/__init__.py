"""Tagwarden: catch container tags that move between the scan and the deployment."""

__version__ = "0.1.0"
