"""Drip e-mail campaigns for Learning & Development teams, as code."""

__version__ = "0.1.0"
