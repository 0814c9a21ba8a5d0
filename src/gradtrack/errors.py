"""Exceptions shared across layers (the bottom of the import graph: imports nothing from gradtrack)."""


class UsageError(Exception):
    """A problem with what the user asked for; the CLI reports it as one line with exit status 2."""
