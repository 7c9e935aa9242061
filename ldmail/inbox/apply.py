"""Applying each mail once: a bounce to the message it is about, an unsubscribe to the person
whose token it carries; the result that `ldmail inbox` prints."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from ..clock import iso
from ..errors import LdmailError, StopRequested
from ..ledger import (
    ERASED,
    FORGOTTEN,
    Applied,
    BounceAction,
    Ledger,
    MessageKey,
    MessageOp,
    MessageState,
    SenderFailure,
    SentMessage,
    ledger_path,
)
from ..ledger.lock import inbox_lock, working_fence
from ..project.config import SETTINGS_FILE, Project
from ..project.models import Inbox, SenderStop
from ..states import message_sources
from ..units import plural
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
# A bounce that names no Message-ID of this ledger (or no address of the messages it names):
# anyone can write one (a forged DSN, a "postmaster" text), so it proves nothing and changes
# nothing; it is recorded once (its keyed hash) and moved to the done folder, where it is kept.
UNVERIFIED = "unverified: no message of this ledger named"
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
    hard: bool = False  # a permanent recipient-side reason: the address is to be suppressed
    campaign: str | None = None
    step: str | None = None
    suppressed: bool = False  # suppressed by this mail (not already before)
    reason_kind: str = ""  # the bounce's reason in the taxonomy (reasons.py), e.g. userunknown
    sender_side: bool = False  # the sending side's fault: counted for the receiving domain
    again: bool = False  # a later bounce of a message already bounced
    counted_for: str = ""  # the domain a sender-side failure is counted for (the refusing one)

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
        elif self.sender_side and self.counted_for:
            done = f"counted for {self.counted_for}, nobody suppressed"
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
    stopped: str | None = None  # why the run ended before the last mail

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
                f"{plural(len(bounces), 'bounce', 'bounces')} ({hard} hard, "
                f"{len(bounces) - hard - sender} soft"
                + (f", {sender} sender-side" if sender else "") + "), "
                f"{plural(len(self.unsubscribes), 'unsubscribe', 'unsubscribes')}, "
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
            "stopped": self.stopped,
            "handled": [asdict(item) for item in self.handled]}, indent=2, ensure_ascii=False)


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
        """Apply a bounce to the messages whose Message-ID it carries, and only to the
        addresses its failures name (the person, or the manager copied in); all of it, and
        the mail as applied, in one transaction."""
        targets = _targets(proven, failures, self._known_as)
        if not targets:
            return self._unverified(mail)
        planned = [(target[1], action) for target in targets
                   if (action := self._action(target)) is not None]
        if not planned:
            return False
        actions = [action for _, action in planned]
        if self.dry_run:
            results: list[Applied | str] = [
                self._would(action.address, action.suppression) for action in actions]
        else:
            results = self.ledger.apply_bounce(actions, self.at, mail=mail)
        for (failure, action), result in zip(planned, results, strict=True):
            if isinstance(result, str):  # changed meanwhile (a resend of an unknown one)
                self.result.left_alone[f"a bounce of a message the ledger has as {result}"] += 1
            else:
                self._handled("bounce", action.address, failure, result, action.key,
                              again=action.again, counted_for=action.sender_failure.domain
                              if action.sender_failure and not result.forgotten else "")
        return any(isinstance(result, Applied) for result in results)

    def _unverified(self, mail: str) -> bool:
        """A bounce that proves nothing: counted once, recorded (its keyed hash only) and
        moved to the done folder, so that later runs do not read it again."""
        self.result.left_alone[UNVERIFIED] += 1
        if not self.dry_run:
            self.ledger.unverified(mail, self.at)
        return True

    def _action(self, target: _Target) -> BounceAction | None:
        """What the bounce does to one message; None (counted as left alone) for a message
        the ledger has in a state that cannot bounce."""
        sent, failure, copy = target
        address = sent.cc if copy else sent.recipient
        assert address is not None  # _targets found the copy's failure
        forgotten = address.startswith(FORGOTTEN)
        again = not copy and sent.state == MessageState.BOUNCED
        if not copy and not again and sent.state not in message_sources(MessageOp.BOUNCE):
            self.result.left_alone[f"a bounce of a message the ledger has as {sent.state}"] += 1
            return None
        return BounceAction(
            sent.key, address,
            f"{_kind_word(failure)} bounce ({failure.kind.value}): {failure.reason}",
            None if forgotten else _suppression(failure),
            None if forgotten else _sender_failure(address, failure), copy, again)

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
                 again: bool = False, counted_for: str = "") -> None:
        """Note a mail applied; a forgotten person is shown with neither address nor reason."""
        forgotten = applied.forgotten or address.startswith(FORGOTTEN)
        reason = UNSUBSCRIBED_BY_MAIL if failure is None else \
            ERASED if forgotten else failure.reason
        self.result.handled.append(Handled(
            kind, FORGOTTEN_SHOWN if forgotten else address, reason,
            failure is not None and failure.effect is Effect.SUPPRESS,
            key.campaign if key else None, key.step if key else None, applied.suppressed,
            failure.kind.value if failure else "",
            failure is not None and failure.effect is Effect.SENDER, again, counted_for))

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


_Target = tuple[SentMessage, Failure, bool]  # the message, its failure, the copy alone


def _targets(proven: list[SentMessage], failures: list[Failure],
             known_as: Callable[[str], str]) -> list[_Target]:
    """Each proven message with the failure the bounce names for its recipient, and for the
    manager copied in (`copy`). The proof says which message, not which address: an action
    applies only to an address a failure names (`known_as` gives one as the ledger keeps it,
    a forgotten one as its keyed hash). A bounce that names neither (a forward to another
    address) is about the person only when it proves one message and names one address, and
    that message copied no manager in (the manager holds the same Message-ID, so a forward
    could be either's, or forged by either); otherwise it proves nothing (empty)."""
    names = [failure.names | {known_as(name) for name in failure.names}
             for failure in failures]  # looked up once per failure, not per message
    found: list[_Target] = []
    for sent in proven:
        for address, copy in ((sent.recipient, False), (sent.cc, True)):
            mine = [failure for failure, named in zip(failures, names, strict=True)
                    if address is not None and address.lower() in named]
            if mine:
                found.append((sent, _worst(mine), copy))
    if found:
        return found
    addresses = {failure.address for failure in failures}
    if len(proven) == 1 and proven[0].cc is None and len(addresses) == 1 \
            and None not in addresses:
        return [(proven[0], _worst(failures), False)]
    return []


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


# Anything with an @ in it, as servers write addresses (also without a top-level domain).
_ANY_ADDRESS = re.compile(r"<?[^\s<>@,;:()\[\]\"']+@[^\s<>@,;:()\[\]\"']+>?")


def _sender_failure(address: str, failure: Failure) -> SenderFailure | None:
    """A sender-side failure, counted for the domain that refused it: the Final-Recipient's
    when the report names one other than the address (a forward), else the address the
    failure names, else the recipient's. Every address is taken out of the reason (it is kept
    with the domain for days, and `forget` must not find one there)."""
    if failure.effect is not Effect.SENDER:
        return None
    refusing = failure.final or failure.address or address

    def redacted(found: re.Match[str]) -> str:
        said = found[0].strip("<>").rstrip(".").lower()
        return "<recipient>" if said == address.lower() else "<address>"

    return SenderFailure(refusing.rpartition("@")[2].lower(),
                         _ANY_ADDRESS.sub(redacted, failure.reason), address)


@dataclass(frozen=True)
class DomainResume:
    """What `ldmail inbox --resume DOMAIN` did (or, in a dry run, would do)."""

    domain: str
    failures: int  # the sender-side failures counted for it, not cleared
    stopped: bool  # whether they stop `send` there now
    dry_run: bool = False

    def line(self) -> str:
        bounces = plural(self.failures, "sender-side bounce", "sender-side bounces")
        if not self.failures:
            return (f"{self.domain}: nothing was stopped for that domain (no sender-side "
                    "bounces counted); nothing to resume")
        if self.dry_run:
            return (f"{self.domain} (dry run: nothing changed): would clear {bounces}"
                    + ("; the next send would go there again" if self.stopped else
                       " (not enough to stop sending there)"))
        return f"{self.domain}: {bounces} cleared; the next send goes there again"


def resume_domain(project: Project, domain: str, now: datetime, *, db: Path | None = None,
                  dry_run: bool = False) -> DomainResume:
    """Send to `domain` again: clear its sender-side bounces (a dry run only counts them)."""
    domain = domain.strip().lower()
    stop = _sender_stop(project)
    with Ledger.of(project, db, readonly=dry_run) as ledger:
        stopped = any(found.domain == domain for found in ledger.stopped_domains(
            iso(now - stop.within), stop.after))
        if dry_run:
            return DomainResume(domain, ledger.sender_failures_of(domain, ""), stopped, True)
        return DomainResume(domain, ledger.resume_domain(domain, iso(now)), stopped)


def _sender_stop(project: Project) -> SenderStop:
    inbox = project.settings.inbox
    return inbox.sender_stop if inbox is not None else SenderStop()


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
    if dry_run:
        return _read_folder(project, settings, db, now, stop, dry_run=True)
    # One reader per inbox (taken before the folder is opened: an mbox is locked on opening),
    # and `forget` waits for this run to end before it erases.
    path = ledger_path(project, db)
    try:
        with inbox_lock(path, _inbox_name(settings)), working_fence(path, "inbox run", stop):
            return _read_folder(project, settings, db, now, stop, dry_run=False)
    except StopRequested:  # while waiting for a running forget: nothing read yet
        return InboxResult(settings.kind, settings.done_folder, False, stopped=STOPPED)


def _inbox_name(settings: Inbox) -> str:
    if settings.kind == "imap":
        return f"imap {settings.user}@{settings.host} folder {settings.folder}"
    return f"{settings.kind} {settings.path}"


def _read_folder(project: Project, settings: Inbox, db: Path | None, now: datetime,
                 stop: threading.Event | None, *, dry_run: bool) -> InboxResult:
    try:
        folder = open_folder(project, settings, stop, dry_run=dry_run)
    except StopRequested:  # while connecting: nothing read yet
        return InboxResult(settings.kind, settings.done_folder, dry_run, stopped=STOPPED)
    try:
        result = InboxResult(folder.where, folder.done, dry_run=dry_run)
        handled: list[str] = []
        try:
            handled = _read(project, db, now, folder, result, settings.max_mail_size, stop)
        except StopRequested:
            result.stopped = STOPPED
        if not dry_run and not result.stopped:
            folder.move(handled)
            result.moved = len(handled)
        return result
    finally:
        folder.close()


def _read(project: Project, db: Path | None, now: datetime, folder: Folder,
          result: InboxResult, limit: int, stop: threading.Event | None) -> list[str]:
    """Apply every mail; returns the keys of those to move to the done folder."""
    with Ledger.of(project, db, readonly=result.dry_run) as ledger:
        if not result.dry_run:  # what is older than the stop's window counts for nothing
            ledger.prune_sender_failures(iso(now - _sender_stop(project).within))
        return _read_each(folder, _Reader(project, ledger, now, result), limit, stop)
