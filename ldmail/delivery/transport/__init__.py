"""Where messages go: an outbox folder (outbox), an SMTP server (smtp), Microsoft Graph's
sendMail (graph), or memory (memory); what they share (base), and the OAuth 2.0 tokens SMTP
and Graph may sign in with (oauth). `open_transports` picks the ones a run's settings name."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ...project.models import Transport as TransportSettings
from .base import Outcome, Pacer, Transport
from .memory import MemoryTransport
from .outbox import Outbox
from .smtp import Smtp

if TYPE_CHECKING:
    from .oauth import Resolve

__all__ = ["MemoryTransport", "Outbox", "Outcome", "Pacer", "Smtp", "Transport",
           "open_transports"]


def open_transports(settings: TransportSettings, outbox: Path,
                    stop: threading.Event | None = None,
                    not_before: float | None = None,
                    resolve: Resolve | None = None) -> list[Transport]:
    """The transports of one run: `connections` SMTP connections (or Graph lanes) sharing one
    rate limit, whose first message waits until `not_before` (see Pacer).

    `resolve` turns a path from the settings into a file of the project (the oauth2
    certificate); with auth: oauth2 and kind: graph the lanes share one token source.
    """
    if settings.kind == "outbox":
        return [Outbox(outbox)]
    pacer = Pacer(settings.rate, not_before)
    if settings.kind == "graph":
        from .graph import open_graph

        return open_graph(settings, pacer, stop, resolve)
    tokens = None
    if settings.auth == "oauth2":
        from .oauth import SMTP_SCOPE, token_source

        tokens = token_source(settings, SMTP_SCOPE, resolve)
    return [Smtp(settings, pacer=pacer, stop=stop, tokens=tokens)
            for _ in range(settings.connections)]
