"""`ldmail retry`: held (and failed) messages due again at once, for the next send."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..clock import iso
from ..ledger import Ledger
from ..project.config import Project
from ..states import retry_sources


def requeue(project: Project, now: datetime, *, failed: bool = False,
            campaign: str | None = None, step: str | None = None,
            db: Path | None = None) -> int:
    """Held messages (with `failed`, failed ones too) of people still enrolled and not
    suppressed, due at once with their attempts afresh; returns how many."""
    with Ledger.of(project, db) as ledger:
        return ledger.retry(retry_sources(failed), iso(now), campaign=campaign, step=step)
