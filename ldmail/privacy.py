"""Opting out for good (`suppress`) and erasing a person from the ledger (`forget`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .audience import find_column, normalise_email, read_rows
from .clock import iso
from .errors import LdmailError
from .ledger import FORGOTTEN, Ledger
from .ledger.people import SUPPRESSED
from .lock import SendLock, held_elsewhere

# How long suppress waits for a running send to finish a message to the person, and forget
# for a running send to end.
SETTLE_SECONDS = 300.0
FORGET_WAIT = 6 * 3600.0

_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def is_token(who: str) -> bool:
    """Whether `who` is an unsubscribe token (rather than an address)."""
    return _TOKEN.match(who.strip().lower()) is not None


def resolve(ledger: Ledger, who: str) -> str:
    """An address, or the unsubscribe token from a List-Unsubscribe mail, as an address."""
    text = who.strip()
    if is_token(text):
        for email in ledger.known_addresses():
            if ledger.address_hash(email) == text.lower():
                return email
        raise LdmailError(f"no person in the ledger has the unsubscribe token {text}")
    try:
        return normalise_email(text)
    except ValueError as exc:
        raise LdmailError(f"{exc}; give an address, or the 32-character token from an "
                          "unsubscribe mail's subject") from None


def suppress(ledger: Ledger, email: str, reason: str, source: str, now: datetime,
             lock: Path | None = None, *, exit_reason: str = SUPPRESSED) -> bool:
    """Never mail this address again; ends its active enrolments now (`exit_reason`: why, as
    the report shows it). False if already so.

    A running send checks suppressions when it claims each message, so none is claimed after
    this; with `lock` (the send lock), it also waits for a message to this person that the
    send already has in hand, so "now suppressed" is true when it is said.
    """
    if ledger.is_forgotten(email):
        return False  # forgotten: suppressed for good, and the address is not stored again
    added = ledger.suppress(email, reason, source, iso(now), exit_reason)
    if lock is not None:
        settle_in_flight(ledger, email, lock)
    return added


def settle_in_flight(ledger: Ledger, email: str, lock: Path,
                     seconds: float = SETTLE_SECONDS) -> None:
    """Wait while a running send still has a message to `email` in hand (claimed)."""
    deadline = time.monotonic() + seconds
    while held_elsewhere(lock) and ledger.has_claimed(email):
        if time.monotonic() > deadline:
            raise LdmailError(f"a running send still has a message to {email} in hand after "
                              f"{seconds:g} s; nothing more will be claimed for them: run this "
                              "command again once that send has ended")
        time.sleep(0.1)


@dataclass
class ImportedSuppressions:
    added: int = 0
    already: int = 0
    skipped: list[str] = field(default_factory=list)


def import_suppressions(ledger: Ledger, path: Path, now: datetime) -> ImportedSuppressions:
    """A bounce or opt-out list: a CSV with an address column (and optionally a reason)."""
    header, rows = read_rows(path, str(path), missing="check the path given to --file")
    names = ("email", "e-mail", "address", "mail", "e-mailadres")
    column = find_column(header, names)
    if column is None:
        raise LdmailError(f"{path}: no email column; name one of: {', '.join(names)} "
                          f"(found: {', '.join(header)})")
    reason_column = find_column(header, ("reason", "reden"))
    result = ImportedSuppressions()
    for line, cells in rows:
        try:
            email = normalise_email(cells[column] if column < len(cells) else "")
        except ValueError as exc:
            result.skipped.append(f"row {line}: {exc}")
            continue
        reason = cells[reason_column].strip() if reason_column is not None and \
            reason_column < len(cells) and cells[reason_column].strip() else "suppression list"
        if suppress(ledger, email, reason, path.name, now):
            result.added += 1
        else:
            result.already += 1
    return result


@dataclass(frozen=True)
class Forgotten:
    rows: int
    outbox_files: int


def forget(ledger: Ledger, email: str, now: datetime, outbox: Path | None,
           lock: Path | None = None) -> Forgotten:
    """Replace the address by a keyed hash everywhere and drop the person's details.

    Message and enrolment rows stay (under the hash) so counts and the report stay true,
    and a suppression under the hash keeps the person from ever being mailed again. That
    suppression is written first: a running send sees it at its next claim. With `lock` (the
    send lock), the erasing waits for a running send to end, so that no row, no page of the
    file and no outbox file holds the address once this returns.
    """
    ledger.suppress(FORGOTTEN + ledger.address_hash(email), "forgotten on request", "forget",
                    iso(now))
    if lock is None:
        return _erase(ledger, email, now, outbox)
    # A running send keeps the ledger's write-ahead log open, so old pages that hold the
    # address could not be overwritten: wait for it to end (it sends the person nothing more).
    with SendLock(lock, wait=FORGET_WAIT):
        return _erase(ledger, email, now, outbox)


def _erase(ledger: Ledger, email: str, now: datetime, outbox: Path | None) -> Forgotten:
    changed = ledger.erase(email, iso(now))
    removed = 0
    if outbox is not None and outbox.is_dir():
        needle = email.encode()
        for path in outbox.glob("*.eml"):
            if needle in path.read_bytes().lower():
                path.unlink()
                removed += 1
    return Forgotten(changed, removed)
