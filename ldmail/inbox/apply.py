"""Applying each mail once: a bounce to the message it is about, an unsubscribe to the person
whose token it carries; the result that `ldmail inbox` prints."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from ..clock import iso
from ..config import SETTINGS_FILE, Project
from ..errors import IllegalTransition, LdmailError, StopRequested
from ..ledger import FORGOTTEN, Ledger, MessageOp, MessageState, SentMessage
from ..ledger.states import message_sources
from .bounces import Failure, bounce_failures, mail_identity, original_ids, unsubscribe_token
from .folders import Folder, open_folder

NOT_OURS = "not a bounce or an unsubscribe"
NOT_SENT = "a bounce of a message ldmail did not send"
NO_TOKEN = "an unsubscribe token no person in the ledger has"
UNSUBSCRIBED_BY_MAIL = "unsubscribed by mail"
STOPPED = ("stopped on request; what was applied is recorded, the rest (and moving the "
           "handled mails) waits for the next run")
FORGOTTEN_SHOWN = "(forgotten)"  # how a person erased on request is named in the output


# -- the result --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Handled:
    """One bounce or unsubscribe applied (or, in a dry run, that would be)."""

    kind: Literal["bounce", "unsubscribe"]
    email: str  # as the ledger has it; FORGOTTEN_SHOWN for a person erased on request
    reason: str  # the bounce's status and diagnostic, or "unsubscribed by mail"
    hard: bool = False
    campaign: str | None = None
    step: str | None = None
    suppressed: bool = False  # suppressed by this mail (not already before)

    @property
    def label(self) -> str:
        return ("hard bounce" if self.hard else "soft bounce") if self.kind == "bounce" \
            else "unsubscribe"

    @property
    def effect(self) -> str:
        if self.suppressed:
            return "suppressed"
        if self.kind == "bounce" and not self.hard:
            return "recorded"
        return "already suppressed"


@dataclass
class InboxResult:
    source: str
    done_folder: str
    dry_run: bool = False
    handled: list[Handled] = field(default_factory=list)
    left_alone: Counter[str] = field(default_factory=Counter)
    applied_before: int = 0  # mails an earlier run applied but left in the folder
    moved: int = 0
    stopped: str | None = None  # why the run ended before the last mail

    @property
    def bounces(self) -> list[Handled]:
        return [item for item in self.handled if item.kind == "bounce"]

    @property
    def unsubscribes(self) -> list[Handled]:
        return [item for item in self.handled if item.kind == "unsubscribe"]

    def summary(self) -> str:
        bounces = self.bounces
        hard = sum(1 for item in bounces if item.hard)
        left = sum(self.left_alone.values())
        why = ", ".join(reason if len(self.left_alone) == 1 else f"{n} {reason}"
                        for reason, n in sorted(self.left_alone.items()))
        line = (f"inbox{' (dry run: nothing changed or moved)' if self.dry_run else ''}: "
                f"{_count(len(bounces), 'bounce', 'bounces')} ({hard} hard, "
                f"{len(bounces) - hard} soft), "
                f"{_count(len(self.unsubscribes), 'unsubscribe', 'unsubscribes')}, "
                f"{left} left alone" + (f" ({why})" if left else ""))
        if self.applied_before:
            line += (f", {self.applied_before} applied by an earlier run"
                     + ("" if self.dry_run else " (moved now)"))
        return line

    def lines(self) -> list[str]:
        """One line per handled mail: what, whose address, which message, why, and effect."""
        shown = []
        for item in self.handled:
            where = f" {item.campaign}/{item.step}" if item.campaign else ""
            why = f": {item.reason}" if item.kind == "bounce" else ""
            shown.append(f"{item.label:<12} {item.email}{where}{why} ({item.effect})")
        return shown

    def to_json(self) -> str:
        bounces = self.bounces
        return json.dumps({
            "dry_run": self.dry_run, "source": self.source, "done_folder": self.done_folder,
            "bounces": len(bounces), "hard": sum(1 for item in bounces if item.hard),
            "soft": sum(1 for item in bounces if not item.hard),
            "unsubscribes": len(self.unsubscribes),
            "left_alone": sum(self.left_alone.values()),
            "left_alone_reasons": dict(sorted(self.left_alone.items())),
            "applied_before": self.applied_before, "moved": self.moved,
            "stopped": self.stopped,
            "handled": [asdict(item) for item in self.handled]}, indent=2, ensure_ascii=False)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# -- applying ----------------------------------------------------------------------------------

def _mailto_addresses(project: Project) -> set[str]:
    """Where List-Unsubscribe mails go: unsubscribe.mailto, or else each campaign's sender
    (as message.unsubscribe_links builds them)."""
    if project.settings.unsubscribe.mailto:
        return {project.settings.unsubscribe.mailto.strip().lower()}
    return {parseaddr(item.model.sender)[1].lower() for item in project.campaigns.values()}


@dataclass(frozen=True)
class _Unsubscribe:
    key: str
    mail: str
    token: str


class _Reader:
    """Classifies each mail and applies it to the ledger (in a dry run: says what it would)."""

    def __init__(self, project: Project, ledger: Ledger, now: datetime, result: InboxResult
                 ) -> None:
        self.ledger, self.result = ledger, result
        self.at = iso(now)
        self.dry_run = result.dry_run
        self.mailto = _mailto_addresses(project)
        self.unsubscribes: list[_Unsubscribe] = []

    def read(self, key: str, raw: bytes) -> bool:
        """Apply one mail; True when it is to be moved to the done folder."""
        try:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            mail = self.ledger.address_hash(mail_identity(message, raw))
            if self.ledger.mail_applied(mail) is not None:
                self.result.applied_before += 1
                return True
            failures = bounce_failures(message, email.message_from_bytes(raw))
            token = None if failures is not None else unsubscribe_token(message, self.mailto)
            ids = original_ids(message) if failures is not None else []
        except Exception as exc:  # one unreadable mail must not stop the others
            self.result.left_alone[f"unreadable ({type(exc).__name__})"] += 1
            return False
        if failures is not None:
            return self._bounce(mail, failures, ids)
        if token is not None:
            self.unsubscribes.append(_Unsubscribe(key, mail, token))
            return False  # decided once every token is looked up (see unsubscribe_all)
        self.result.left_alone[NOT_OURS] += 1
        return False

    # -- bounces ------------------------------------------------------------------------------

    def _bounce(self, mail: str, failures: list[Failure], ids: list[str]) -> bool:
        targets: list[tuple[SentMessage, Failure]] = []
        for message_id in ids:
            found = self.ledger.message_with_id(message_id)
            if found is not None:  # ldmail sends one recipient a message: it is about that one
                targets.append((found, _worst(failures)))
                break
        if not targets:
            for address in dict.fromkeys(f.address for f in failures if f.address):
                sent = self.ledger.last_bounceable_to(address)
                if sent is not None:
                    targets.append((sent, _worst([f for f in failures if f.address == address])))
        if not targets:
            self.result.left_alone[NOT_SENT] += 1
            return False
        applied = False
        for index, (sent, failure) in enumerate(targets):
            last = index == len(targets) - 1
            copy = _copy_failure(sent, failures)
            if copy is not None:
                applied |= self._apply_copy_bounce(sent, copy, mail if last else None)
            else:
                applied |= self._apply_bounce(sent, failure, mail if last else None)
        return applied

    def _apply_copy_bounce(self, sent: SentMessage, failure: Failure, mail: str | None) -> bool:
        """Only the copy to the person's manager bounced: the message stays as it is, and a
        hard bounce suppresses the manager's address."""
        address = sent.cc
        assert address is not None  # _copy_failure found the copy's failure
        suppression = f"bounced: {failure.reason}" if failure.hard else None
        if self.dry_run:
            added = suppression is not None and not self.ledger.is_suppressed(address)
        else:
            added = self.ledger.bounced_again(address, self.at, mail=mail,
                                              suppression=suppression)
        self.result.handled.append(Handled("bounce", address, failure.reason, failure.hard,
                                           sent.key.campaign, sent.key.step, added))
        return True

    def _apply_bounce(self, sent: SentMessage, failure: Failure, mail: str | None) -> bool:
        key, email_address = sent.key, sent.recipient
        forgotten = email_address.startswith(FORGOTTEN)
        suppression = f"bounced: {failure.reason}" if failure.hard and not forgotten else None
        kind = "hard" if failure.hard else "soft"
        again = sent.state == MessageState.BOUNCED
        if not again and sent.state not in message_sources(MessageOp.BOUNCE):
            self.result.left_alone[f"a bounce of a message the ledger has as {sent.state}"] += 1
            return False
        if self.dry_run:
            added = suppression is not None and not self.ledger.is_suppressed(email_address)
        else:
            try:
                if again:
                    added = self.ledger.bounced_again(email_address, self.at, mail=mail,
                                                      suppression=suppression)
                else:
                    added = self.ledger.bounce(key, f"{kind} bounce: {failure.reason}",
                                               self.at, mail=mail, suppression=suppression,
                                               address=email_address)
            except IllegalTransition as exc:  # changed meanwhile (a resend of an unknown one)
                self.result.left_alone[f"a bounce of a message the ledger has as "
                                       f"{exc.state}"] += 1
                return False
        self.result.handled.append(Handled(
            "bounce", FORGOTTEN_SHOWN if forgotten else email_address, failure.reason,
            failure.hard, key.campaign, key.step, added))
        return True

    # -- unsubscribes -------------------------------------------------------------------------

    def unsubscribe_all(self) -> list[str]:
        """Look every token up in one pass over the ledger's addresses, then apply them;
        returns the keys of the mails to move."""
        if not self.unsubscribes:
            return []
        wanted = {item.token for item in self.unsubscribes}
        found: dict[str, str] = {}
        for known in self.ledger.known_addresses():
            token = self.ledger.address_hash(known)
            if token in wanted:
                found[token] = known
                if len(found) == len(wanted):
                    break
        forgotten = self.ledger.forgotten_hashes() & (wanted - set(found))
        moved = []
        for item in self.unsubscribes:
            address: str | None = found.get(item.token)
            if address is None and item.token in forgotten:
                address = FORGOTTEN + item.token  # erased on request: suppressed already
            if address is None:
                self.result.left_alone[NO_TOKEN] += 1
                continue
            if self.dry_run:
                added = not self.ledger.is_suppressed(address)
            else:
                added = self.ledger.unsubscribed(address, UNSUBSCRIBED_BY_MAIL, self.at,
                                                 mail=item.mail)
            self.result.handled.append(Handled(
                "unsubscribe", FORGOTTEN_SHOWN if address.startswith(FORGOTTEN) else address,
                UNSUBSCRIBED_BY_MAIL, suppressed=added))
            moved.append(item.key)
        return moved


def _copy_failure(sent: SentMessage, failures: list[Failure]) -> Failure | None:
    """The failure of the copy to a manager, when the bounce names that address alone."""
    if sent.cc is None:
        return None
    named = {f.address.lower() for f in failures if f.address}
    if named != {sent.cc}:
        return None
    return _worst([f for f in failures if f.address and f.address.lower() == sent.cc])


def _worst(failures: list[Failure]) -> Failure:
    """A hard failure before a soft one; the first with a status code among equals."""
    return sorted(failures, key=lambda f: (not f.hard, not f.status))[0]


def _read_each(folder: Folder, reader: _Reader, limit: int, stop: threading.Event | None
               ) -> list[str]:
    """Read and apply the mails one by one (a stop request is obeyed between two); returns
    the keys of those to move. A mail over `limit` bytes is counted, never read whole."""
    too_large = f"larger than inbox.max_mail_size ({limit:,} bytes; not read)"
    handled = []
    for key in folder.keys():
        if stop is not None and stop.is_set():
            raise StopRequested
        if folder.size(key) > limit:
            reader.result.left_alone[too_large] += 1
            continue
        raw = folder.fetch(key, limit)
        if len(raw) > limit:  # grew since, or the server did not say its size
            reader.result.left_alone[too_large] += 1
        elif reader.read(key, raw):
            handled.append(key)
    return handled + reader.unsubscribe_all()


def read_inbox(project: Project, now: datetime, *, db: Path | None = None,
               dry_run: bool = False, stop: threading.Event | None = None) -> InboxResult:
    """Apply every bounce and unsubscribe mail in the inbox folder once, and move them to the
    done folder; a dry run reads the ledger only and moves nothing.

    A mail larger than inbox.max_mail_size is not read (counted as left alone). A stop
    request ends the run between two mails (or cuts an IMAP command short): what was applied
    stays applied, the handled mails are moved by the next run, and `stopped` says so."""
    settings = project.settings.inbox
    if settings is None:
        raise LdmailError(f"{SETTINGS_FILE} has no inbox: block; add one that names the "
                          "sender's mailbox (kind: imap with host, user and password_env, or "
                          "kind: maildir or mbox with a path); see the README's 'The sender's "
                          "mailbox'")
    try:
        folder = open_folder(project, settings, stop, dry_run=dry_run)
    except StopRequested:  # while connecting: nothing read yet
        return InboxResult(settings.kind, settings.done_folder, dry_run, stopped=STOPPED)
    try:
        result = InboxResult(folder.where, folder.done, dry_run=dry_run)
        handled: list[str] = []
        try:
            with Ledger.of(project, db, readonly=dry_run) as ledger:
                reader = _Reader(project, ledger, now, result)
                handled = _read_each(folder, reader, settings.max_mail_size, stop)
        except StopRequested:
            result.stopped = STOPPED
        if not dry_run and not result.stopped:
            folder.move(handled)
            result.moved = len(handled)
        return result
    finally:
        folder.close()
