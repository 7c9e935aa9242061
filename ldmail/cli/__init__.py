"""The command line: parses options, calls the core and prints what it returns.

`ldmail.cli:main` is the console script and `python -m ldmail` runs it; `app` is the
Typer application the tests drive."""

from .app import app, main

__all__ = ["app", "main"]
