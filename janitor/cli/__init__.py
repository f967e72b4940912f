"""The command line: options defined once, commands, and rendering that only formats."""

from janitor.cli.app import app, main

__all__ = ["app", "main"]
