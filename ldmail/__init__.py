"""Drip e-mail campaigns for Learning & Development teams, as code."""

from importlib.metadata import PackageNotFoundError, version

try:  # one source for the version: the package metadata (pyproject.toml)
    __version__ = version("ldmail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
