"""Applying each mail once: a bounce to the message it is about, an unsubscribe to the person
whose token it carries; the result that `ldmail inbox` prints."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from ..clock import iso
from ..config import SETTINGS_FILE, Project
from ..errors import IllegalTransition, LdmailError
from ..ledger import (
    ERASED,
    FORGOTTEN,
    Applied,
    Ledger,
    MessageKey,
    MessageOp,
    MessageState,
    SenderFailure,
    SentMessage,
    ledger_path,
)
from ..ledger.states import message_sources
from ..lock import inbox_lock, working_fence
from ..models import Inbox
from .bounces import (
    Failure,
    bounce_failures,
    cited_ids,
    mail_identity,
    parse,
    unsubscribe_token,
)
from .folders import Folder, open_folder
from .reasons import Effect

NOT_OURS = "not a bounce or an unsubscribe"
# A bounce that names no Message-ID of this ledger: anyone can write one (a forged DSN, a
# "postmaster" text), so it proves nothing and changes nothing; it stays in the folder.
UNVERIFIED = "unverified: no message of this ledger named"
NO_TOKEN = "an unsubscribe token no person in the ledger has"
UNSUBSCRIBED_BY_MAIL = "unsubscribed by mail"
FORGOTTEN_SHOWN = "(forgotten)"  # how a person erased on request is named in the output


# -- the result --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Handled:
    """One bounce or unsubscribe applied (or, in a dry run, that would be)."""

    kind: Literal["bounce", "unsubscribe"]
    email: str  # as the ledger has it; FORGOTTEN_SHOWN for a person erased on request
    reason: str  # the bounce's status and diagnostic, or "unsubscribed by mail"
    hard: bool = False  # a permanent recipient-side reason: the address is to be suppressed
    campaign: str | None = None
    step: str | None = None
    suppressed: bool = False  # suppressed by this mail (not already before)
    reason_kind: str = ""  # the bounce's reason in the taxonomy (reasons.py), e.g. userunknown
    sender_side: bool = False  # the sending side's fault: counted for the receiving domain
    again: bool = False  # a later bounce of a message already bounced

    @property
    def label(self) -> str:
        if self.kind != "bounce":
            return "unsubscribe"
        return "sender-side" if self.sender_side else "hard bounce" if self.hard \
            else "soft bounce"

    @property
    def effect(self) -> str:
        if self.suppressed:
            done = "suppressed"
        elif self.sender_side and self.email != FORGOTTEN_SHOWN:
            done = f"counted for {self.email.rpartition('@')[2]}, nobody suppressed"
        elif self.sender_side:
            done = "nobody suppressed"
        elif self.kind == "bounce" and not self.hard:
            done = "recorded"
        else:
            done = "already suppressed"
        if self.again and not self.suppressed:
            done = f"already bounced before: {done}"
        return f"{self.reason_kind}: {done}" if self.reason_kind else done


@dataclass
class InboxResult:
    source: str
    done_folder: str
    dry_run: bool = False
    handled: list[Handled] = field(default_factory=list)
    left_alone: Counter[str] = field(default_factory=Counter)
    applied_before: int = 0  # mails an earlier run applied but left in the folder
    moved: int = 0

    @property
    def bounces(self) -> list[Handled]:
        return [item for item in self.handled if item.kind == "bounce"]

    @property
    def unsubscribes(self) -> list[Handled]:
        return [item for item in self.handled if item.kind == "unsubscribe"]

    @property
    def unverified(self) -> int:
        return self.left_alone[UNVERIFIED]

    def summary(self) -> str:
        bounces = self.bounces
        hard = sum(1 for item in bounces if item.hard)
        sender = sum(1 for item in bounces if item.sender_side)
        left = sum(self.left_alone.values())
        why = ", ".join(reason if len(self.left_alone) == 1 else f"{n} {reason}"
                        for reason, n in sorted(self.left_alone.items()))
        line = (f"inbox{' (dry run: nothing changed or moved)' if self.dry_run else ''}: "
                f"{_count(len(bounces), 'bounce', 'bounces')} ({hard} hard, "
                f"{len(bounces) - hard - sender} soft"
                + (f", {sender} sender-side" if sender else "") + "), "
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
            "soft": sum(1 for item in bounces if not item.hard and not item.sender_side),
            "sender_side": sum(1 for item in bounces if item.sender_side),
            "unverified": self.unverified,
            "unsubscribes": len(self.unsubscribes),
            "left_alone": sum(self.left_alone.values()),
            "left_alone_reasons": dict(sorted(self.left_alone.items())),
            "applied_before": self.applied_before, "moved": self.moved,
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
            message, compat = parse(raw)
            mail = self.ledger.address_hash(mail_identity(message, raw))
            if self.ledger.mail_applied(mail) is not None:
                self.result.applied_before += 1
                return True
            failures = bounce_failures(message, compat)
            token = None if failures is not None else unsubscribe_token(message, self.mailto)
            proven = self.ledger.messages_with_ids(cited_ids(message, raw)) \
                if failures is not None else []
        except Exception as exc:  # one unreadable mail must not stop the others
            self.result.left_alone[f"unreadable ({type(exc).__name__})"] += 1
            return False
        if failures is not None:
            return self._bounce(mail, failures, proven)
        if token is not None:
            self.unsubscribes.append(_Unsubscribe(key, mail, token))
            return False  # decided once every token is looked up (see unsubscribe_all)
        self.result.left_alone[NOT_OURS] += 1
        return False

    # -- bounces ------------------------------------------------------------------------------

    def _bounce(self, mail: str, failures: list[Failure], proven: list[SentMessage]) -> bool:
        """Apply a bounce to the messages whose Message-ID it carries, and only to their
        recipients (the person, or the manager copied in)."""
        if not proven:
            self.result.left_alone[UNVERIFIED] += 1
            return False
        targets = [(sent, *_about(sent, failures, self._known_as)) for sent in proven]
        applied = False
        for index, (sent, failure, copy) in enumerate(targets):
            last = index == len(targets) - 1
            if copy:
                applied |= self._apply_copy_bounce(sent, failure, mail if last else None)
            else:
                applied |= self._apply_bounce(sent, failure, mail if last else None)
        return applied

    def _apply_copy_bounce(self, sent: SentMessage, failure: Failure, mail: str | None) -> bool:
        """Only the copy to the person's manager bounced: the message stays as it is, and a
        hard bounce suppresses the manager's address."""
        address = sent.cc
        assert address is not None  # _about found the copy's failure
        suppression = _suppression(failure)
        if self.dry_run:
            applied = self._would(address, suppression)
        else:
            applied = self.ledger.bounced_again(address, self.at, mail=mail,
                                                suppression=suppression,
                                                sender_failure=_sender_failure(address, failure))
        self._handled("bounce", address, failure, applied, sent.key)
        return True

    def _known_as(self, address: str) -> str:
        """An address as the ledger keeps it: a forgotten person's as its keyed hash."""
        return self.ledger.forgotten_as(address) or address

    def _would(self, address: str, suppression: str | None) -> Applied:
        """What a dry run says a bounce or unsubscribe would do."""
        forgotten = self.ledger.forgotten_as(address) is not None
        return Applied(suppression is not None and not forgotten and
                       not self.ledger.is_suppressed(address), forgotten)

    def _handled(self, kind: Literal["bounce", "unsubscribe"], address: str,
                 failure: Failure | None, applied: Applied, key: MessageKey | None = None, *,
                 again: bool = False) -> None:
        """Note a mail applied; a forgotten person is shown with neither address nor reason."""
        forgotten = applied.forgotten or address.startswith(FORGOTTEN)
        reason = UNSUBSCRIBED_BY_MAIL if failure is None else \
            ERASED if forgotten else failure.reason
        self.result.handled.append(Handled(
            kind, FORGOTTEN_SHOWN if forgotten else address, reason,
            failure is not None and failure.effect is Effect.SUPPRESS,
            key.campaign if key else None, key.step if key else None, applied.suppressed,
            failure.kind.value if failure else "",
            failure is not None and failure.effect is Effect.SENDER, again))

    def _apply_bounce(self, sent: SentMessage, failure: Failure, mail: str | None) -> bool:
        key, email_address = sent.key, sent.recipient
        forgotten = email_address.startswith(FORGOTTEN)
        suppression = None if forgotten else _suppression(failure)
        error = f"{_kind_word(failure)} bounce ({failure.kind.value}): {failure.reason}"
        sender_failure = None if forgotten else _sender_failure(email_address, failure)
        again = sent.state == MessageState.BOUNCED
        if not again and sent.state not in message_sources(MessageOp.BOUNCE):
            self.result.left_alone[f"a bounce of a message the ledger has as {sent.state}"] += 1
            return False
        if self.dry_run:
            applied = self._would(email_address, suppression)
        else:
            try:
                if again:  # a harder reason (a delay, then 5.1.1) replaces the earlier one
                    applied = self.ledger.bounced_again(
                        email_address, self.at, mail=mail, suppression=suppression,
                        sender_failure=sender_failure,
                        harder=(key, error) if suppression is not None else None)
                else:
                    applied = self.ledger.bounce(key, error, self.at, mail=mail,
                                                 suppression=suppression, address=email_address,
                                                 sender_failure=sender_failure)
            except IllegalTransition as exc:  # changed meanwhile (a resend of an unknown one)
                self.result.left_alone[f"a bounce of a message the ledger has as "
                                       f"{exc.state}"] += 1
                return False
        self._handled("bounce", email_address, failure, applied, key, again=again)
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
                applied = self._would(address, UNSUBSCRIBED_BY_MAIL)
            else:
                applied = self.ledger.unsubscribed(address, UNSUBSCRIBED_BY_MAIL, self.at,
                                                   mail=item.mail)
            self._handled("unsubscribe", address, None, applied)
            moved.append(item.key)
        return moved


def _about(sent: SentMessage, failures: list[Failure], known_as: Callable[[str], str]
           ) -> tuple[Failure, bool]:
    """The failure a bounce reports for this message's recipient, and whether it is the copy
    to the manager alone. A bounce that names neither (a forward to another address) is about
    the person: it carries the message's own Message-ID. `known_as` gives an address as the
    ledger keeps it (a forgotten one as its keyed hash), so a forgotten manager's copy is still
    recognised as the copy."""
    def names(failure: Failure) -> set[str]:
        return failure.names | {known_as(name) for name in failure.names}

    mine = [f for f in failures if sent.recipient.lower() in names(f)]
    if mine:
        return _worst(mine), False
    copy = [f for f in failures if sent.cc is not None and sent.cc.lower() in names(f)]
    if copy:
        return _worst(copy), True
    return _worst(failures), False


def _worst(failures: list[Failure]) -> Failure:
    """The failure that says most: one that suppresses, then a sender-side one, then a
    permanent one; the first with a status code among equals."""
    order = {Effect.SUPPRESS: 0, Effect.SENDER: 1, Effect.RECORD: 2}
    return sorted(failures, key=lambda f: (order[f.effect], not f.hard, not f.status))[0]


def _suppression(failure: Failure) -> str | None:
    """The suppression reason when the failure is a permanent recipient-side one."""
    return f"bounced: {failure.reason}" if failure.effect is Effect.SUPPRESS else None


def _kind_word(failure: Failure) -> str:
    return {Effect.SUPPRESS: "hard", Effect.SENDER: "sender-side"}.get(failure.effect, "soft")


def _sender_failure(address: str, failure: Failure) -> SenderFailure | None:
    """A sender-side failure for the receiving domain, with the address taken out of the
    reason (it is kept with the domain for days, and `forget` must not find it there)."""
    if failure.effect is not Effect.SENDER:
        return None
    local, _, domain = address.rpartition("@")
    words = re.sub(re.escape(address), "<recipient>", failure.reason, flags=re.I)
    return SenderFailure(domain.lower(), re.sub(re.escape(local) + "@", "<recipient>@", words,
                                                flags=re.I) if local else words)


def resume_domain(project: Project, domain: str, now: datetime, *, db: Path | None = None
                  ) -> int:
    """Send to `domain` again: clear its sender-side bounces; returns how many."""
    with Ledger.of(project, db) as ledger:
        return ledger.resume_domain(domain.strip().lower(), iso(now))


def read_inbox(project: Project, now: datetime, *, db: Path | None = None,
               dry_run: bool = False) -> InboxResult:
    """Apply every bounce and unsubscribe mail in the inbox folder once, and move them to the
    done folder; a dry run reads the ledger only and moves nothing."""
    settings = project.settings.inbox
    if settings is None:
        raise LdmailError(f"{SETTINGS_FILE} has no inbox: block; add one that names the "
                          "sender's mailbox (kind: imap with host, user and password_env, or "
                          "kind: maildir or mbox with a path); see the README's 'The sender's "
                          "mailbox'")
    if dry_run:
        return _read_folder(project, settings, db, now, dry_run=True)
    # One reader per inbox (taken before the folder is opened: an mbox is locked on opening),
    # and `forget` waits for this run to end before it erases.
    path = ledger_path(project, db)
    with inbox_lock(path, _inbox_name(settings)), working_fence(path, "inbox run"):
        return _read_folder(project, settings, db, now, dry_run=False)


def _inbox_name(settings: Inbox) -> str:
    if settings.kind == "imap":
        return f"imap {settings.user}@{settings.host} folder {settings.folder}"
    return f"{settings.kind} {settings.path}"


def _read_folder(project: Project, settings: Inbox, db: Path | None, now: datetime, *,
                 dry_run: bool) -> InboxResult:
    folder = open_folder(project, settings)
    try:
        result = InboxResult(folder.where, folder.done, dry_run=dry_run)
        handled = _read(project, db, now, folder, result)
        if not dry_run:
            folder.move(handled)
            result.moved = len(handled)
        return result
    finally:
        folder.close()


def _read(project: Project, db: Path | None, now: datetime, folder: Folder,
          result: InboxResult) -> list[str]:
    """Apply every mail; returns the keys of those to move to the done folder."""
    with Ledger.of(project, db, readonly=result.dry_run) as ledger:
        reader = _Reader(project, ledger, now, result)
        handled = [key for key in folder.keys() if reader.read(key, folder.fetch(key))]
        return handled + reader.unsubscribe_all()
