"""Opting out for good (`suppress`), erasing a person from the ledger (`forget`), and what the
ledger holds for one person (`history`)."""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..clock import iso
from ..errors import LdmailError, LedgerBusy
from ..ledger import FORGOTTEN, UNSUBSCRIBED, Ledger, PersonHistory
from ..ledger.lock import SendLock, forget_fence, held_elsewhere, send_lock_path
from ..ledger.people import SUPPRESSED
from ..project.config import OUTBOX_SETTING, PREVIEW_FOLDER, Project
from .export import find_column, normalise_email, read_rows

# How long suppress waits for a running send to finish a message to the person, and forget
# for a running send to end.
SETTLE_SECONDS = 300.0
FORGET_WAIT = 6 * 3600.0
# How long forget waits, by default, for running pulls and inbox runs and for other programs'
# read snapshots of the ledger (seconds).
READER_WAIT = 60.0

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


@dataclass(frozen=True)
class PersonRecord:
    """What the ledger holds for one person, and the address it holds it under."""

    address: str
    history: PersonHistory


def history_of(project: Project, who: str, *, db: Path | None = None) -> PersonRecord:
    """`ldmail history`: everything the ledger holds for an address or unsubscribe token."""
    with Ledger.of(project, db, readonly=True) as ledger:
        # The same spelling the export loader stores (a Unicode domain as its ASCII form).
        address = resolve(ledger, who)
        return PersonRecord(address, ledger.history(address))


@dataclass(frozen=True)
class Suppressed:
    email: str
    added: bool  # False: the address already was suppressed


def suppress_person(project: Project, who: str, reason: str, now: datetime, *,
                    db: Path | None = None) -> Suppressed:
    """`ldmail suppress`: an address, or the token from an unsubscribe mail, never mailed
    again; once a running send has recorded a message to them it may have in hand."""
    with Ledger.of(project, db) as ledger:
        email = resolve(ledger, who)
        # The token is only ever in an unsubscribe mail: that person unsubscribed.
        added = suppress(ledger, email, reason, "command", now, lock=send_lock_path(ledger.path),
                         exit_reason=UNSUBSCRIBED if is_token(who) else SUPPRESSED)
    return Suppressed(email, added)


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


def suppress_list(project: Project, path: Path, now: datetime, *,
                  db: Path | None = None) -> ImportedSuppressions:
    """`ldmail suppress --file`: every address of a bounce or opt-out list."""
    with Ledger.of(project, db) as ledger:
        return import_suppressions(ledger, path, now)


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
    outbox_files: int  # messages (and partial ones a killed send left) deleted
    preview_files: int  # previews of the person's messages deleted


def forget_person(project: Project, who: str, now: datetime, *, db: Path | None = None,
                  wait: float = READER_WAIT,
                  waiting: Callable[[], None] = lambda: None) -> Forgotten:
    """`ldmail forget`: the person erased from the ledger, the outbox and the previews; they
    stay suppressed. `waiting` is called first when a running send must end before that."""
    with Ledger.of(project, db) as ledger:
        address = resolve(ledger, who)
        lock = send_lock_path(ledger.path)
        if held_elsewhere(lock):
            waiting()
        return forget(ledger, address, now,
                      project.path(project.settings.transport.outbox, OUTBOX_SETTING),
                      lock=lock, previews=project.root / PREVIEW_FOLDER, wait=wait)


def forget(ledger: Ledger, email: str, now: datetime, outbox: Path | None,
           lock: Path | None = None, *, previews: Path | None = None,
           wait: float = READER_WAIT) -> Forgotten:
    """Replace the address by a keyed hash everywhere, drop the person's details, and delete
    the files ldmail wrote that name them.

    Message and enrolment rows stay (under the hash) so counts and the report stay true,
    and a suppression under the hash keeps the person from ever being mailed again. That
    suppression is written first: a running send sees it at its next claim, and every later
    write of a bounce, an unsubscribe or an event checks it in its own transaction and keeps
    only the hash. With `lock` (the send lock), the erasing waits for a running send to end;
    it always waits (up to `wait` seconds) for running pulls and inbox runs, and for other
    programs' read snapshots of the ledger, so that no row, no page of the file and no file
    holds the address once this returns. LedgerBusy when it cannot make that true.
    """
    ledger.suppress(FORGOTTEN + ledger.address_hash(email), "forgotten on request", "forget",
                    iso(now))
    with contextlib.ExitStack() as held:
        if lock is not None:
            # A running send keeps messages to the person in hand until it records them.
            held.enter_context(SendLock(lock, wait=FORGET_WAIT))
        held.enter_context(forget_fence(ledger.path, wait))
        return _erase(ledger, email, now, outbox, previews, wait)


def _erase(ledger: Ledger, email: str, now: datetime, outbox: Path | None,
           previews: Path | None, wait: float) -> Forgotten:
    names = ledger.names_of(email)
    changed = ledger.erase(email, iso(now), names)
    # A message in the outbox is theirs when it holds their address (others may share a
    # first name); a preview of theirs may hold only their name.
    removed = _delete_mentioning(outbox, ("*.eml", ".*.eml.part"), _mentions(email, []))
    shown = _delete_mentioning(previews, ("*.html",), _mentions(email, names))
    if not ledger.make_final(wait):
        raise LedgerBusy(
            f"{ledger.path}: the person's rows hold only a keyed hash now, but another program "
            f"has kept a read snapshot of the ledger open for {wait:g} s, so old pages of the "
            "file still hold the address; close it (a sqlite3 shell, a backup, a long report) "
            "and run forget again")
    return Forgotten(changed, removed, shown)


def _mentions(email: str, names: list[str]) -> re.Pattern[bytes]:
    """The address, and each word of 3 letters or more of the person's names (as text and as
    HTML writes it), in the raw bytes of a file."""
    words = {word for name in names for word in re.findall(r"\w{3,}", name)}
    address = rb"(?<![A-Za-z0-9._%+-])" + re.escape(email.encode()) + \
        rb"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"  # not inside a longer address such as jo+ann@…
    # Not \b around a name: in bytes it sees no edge after a letter such as é (two bytes,
    # neither a word character in ASCII).
    needles = [address] + [
        rb"(?<![A-Za-z0-9_])" + re.escape(form.encode()) + rb"(?![A-Za-z0-9_])"
        for word in sorted(words) for form in {word, html.escape(word)}]
    return re.compile(b"|".join(needles), re.IGNORECASE)


def _delete_mentioning(folder: Path | None, patterns: tuple[str, ...],
                       mentions: re.Pattern[bytes]) -> int:
    """Delete the files of `folder` (matching `patterns`) that mention the person."""
    if folder is None or not folder.is_dir():
        return 0
    removed = 0
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_file() and not path.is_symlink() and mentions.search(path.read_bytes()):
                path.unlink()
                removed += 1
    return removed
