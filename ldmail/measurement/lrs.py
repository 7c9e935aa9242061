"""`ldmail events pull`: new xAPI statements from a Learning Record Store, as goal events.

Reads the statements resource of xAPI 1.0.3 (`GET <endpoint>/statements?since=…&ascending=
true`), page by page through `more`. Each page's events and the cursor are committed in one
transaction, so a pull killed at any point loses nothing, and what it repeats is recognised
by statement id.

`since` is exclusive and statements stored in one batch share a `stored` time, which may
straddle a page boundary: so the cursor is the latest `stored` time read *whole* (an earlier
time than the latest on the page, until a later page or the end shows nothing more can carry
it), never past X-Experience-API-Consistent-Through, and never moved by a `stored` time
beyond now plus FUTURE_SKEW (such a statement is still recorded, and reported).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx

from .. import outside
from ..clock import iso, wall_now
from ..errors import HttpFailed, LdmailError, LrsError, StopRequested
from ..ledger import FORGOTTEN, GoalEvent, Ledger, ledger_path
from ..ledger.lock import working_fence
from ..project.models import DateLimits, Lrs
from ..sandbox.hygiene import excerpt
from .events import (
    MAX_JSON_DEPTH,
    ActorLookup,
    Skipped,
    actor_lookup,
    load_json,
    parse_timestamp,
    statement_event,
)

if TYPE_CHECKING:
    from ..project.config import Project

CURSOR = "lrs_cursor"  # the meta key of the `stored` time read up to
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
MAX_PAGES = 1_000  # per pull; an endless chain of `more` links stops there
MAX_ANSWER = 64 * 1024 * 1024  # bytes of one page, once inflated (10,000 statements of 6 kB)
ATTEMPTS = 5  # per request, for 429, 5xx and connections refused
MAX_WAIT = 60.0  # longest pause between attempts, whatever Retry-After says
MAX_PAGE_DEPTH = 512  # a page nested deeper is refused whole (each statement: 64)
FUTURE_SKEW = timedelta(minutes=5)  # how far the LRS's clock may run ahead of ours
STOPPED = "stopped on request"


@dataclass
class PullResult:
    statements: int = 0
    added: int = 0
    already_known: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)  # recorded, but worth a look
    voided: int = 0  # voiding statements read
    revoked: int = 0  # goal events they revoked
    requests: int = 0
    cursor: str | None = None

    def summary(self) -> str:
        return (f"pulled {self.statements} statements: {self.added} goal events recorded "
                f"({self.already_known} already known), "
                + (f"{self.revoked} revoked by voiding statements, " if self.voided else "")
                + f"{len(self.skipped)} skipped; "
                f"cursor now {self.cursor or '(none)'}")


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.hostname, x.port) == (y.scheme, y.hostname, y.port)


class _Reader:
    """GET with retries; one line for whatever ends the pull."""

    def __init__(self, lrs: Lrs, client: httpx.Client, sleep: Callable[[float], None],
                 stop: threading.Event | None) -> None:
        self.lrs, self.client, self.sleep, self.stop = lrs, client, sleep, stop
        self.requests = 0

    def stopped(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise LrsError(f"{self.lrs.endpoint}: {STOPPED}; what was read is recorded, the "
                           "next pull goes on from there")

    def get(self, url: str, params: dict[str, str] | None) -> outside.Answer:
        lrs = self.lrs
        problem = ""
        for attempt in range(ATTEMPTS):
            self.stopped()
            answer: outside.Answer | None = None
            self.requests += 1
            try:
                answer = outside.request(self.client, "GET", url, params=params,
                                         seconds=lrs.timeout.total_seconds(),
                                         max_bytes=MAX_ANSWER, stop=self.stop)
            except HttpFailed as exc:
                self.stopped()
                if exc.phase != "connect" or exc.late or exc.lasting:
                    # Late, too large, broken or a URL that cannot be used: asking again
                    # would only cost the time again.
                    raise LrsError(f"{exc}; the cursor stays after the last recorded page, "
                                   "the next pull tries again") from None
                problem = str(exc)
            else:
                if answer.status in (401, 403):
                    raise LrsError(
                        f"{lrs.endpoint}: the LRS refused user {lrs.user!r} "
                        f"(HTTP {answer.status}); check the secret in ${lrs.password_env}"
                        " and that this key may read statements (read-only scope)")
                if answer.status == 429 or answer.status >= 500:
                    problem = f"{lrs.endpoint}: HTTP {answer.status}"
                elif answer.status >= 400:
                    said = answer.body[:200].decode("utf-8", "replace")
                    raise LrsError(f"{url}: HTTP {answer.status} {excerpt(said, 200)}")
                else:
                    return answer
            if attempt + 1 < ATTEMPTS:
                self.sleep(outside.retry_after(answer.headers if answer else None, attempt,
                                               floor=0.5, cap=MAX_WAIT))
        raise LrsError(f"{problem} after {ATTEMPTS} attempts; the cursor stays where it was, "
                       "the next pull tries again")


@dataclass
class _Cursor:
    """The latest `stored` time read whole. Pages come in ascending `stored` order, so a time
    earlier than the latest read is complete; the latest is complete only at the end."""

    horizon: datetime  # stored times beyond it never move the cursor
    top: tuple[datetime, str] | None = None  # the latest stored time read
    below: tuple[datetime, str] | None = None  # the latest read before `top`

    def see(self, stored: str) -> bool:
        """Take one statement's stored time; False when it lies beyond the horizon."""
        moment = parse_timestamp(stored)
        if moment > self.horizon:
            return False
        if self.top is None or moment > self.top[0]:
            if self.top is not None:
                self.below = self.top
            self.top = (moment, stored)
        elif moment < self.top[0] and (self.below is None or moment > self.below[0]):
            self.below = (moment, stored)
        return True

    def value(self, previous: str | None, through: str | None, *, ended: bool) -> str | None:
        """The cursor to record: never back, never past `through` (Consistent-Through)."""
        found = self.top if ended else self.below
        if found is None:
            return previous
        moment, text = found
        if through:
            try:
                if parse_timestamp(through) < moment:
                    moment, text = parse_timestamp(through), through
            except ValueError:
                pass
        if previous is not None:
            try:
                if parse_timestamp(previous) >= moment:
                    return previous
            except ValueError:
                pass
        return text


@dataclass
class _Page:
    events: list[GoalEvent] = field(default_factory=list)
    wheres: list[str] = field(default_factory=list)  # where each event's statement is
    voided: list[str] = field(default_factory=list)


class _Statements:
    """What a pull's statements become: events, voidings, skipped rows and notes."""

    def __init__(self, ledger: Ledger, lrs: Lrs, result: PullResult, limits: DateLimits,
                 lookup: ActorLookup | None, cursor: _Cursor) -> None:
        self.ledger, self.result, self.limits, self.lookup = ledger, result, limits, lookup
        self.cursor = cursor
        self.verbs, self.activities = set(lrs.verbs), set(lrs.activities)
        self.forgotten = ledger.forgotten_hashes()
        self.read: dict[str, GoalEvent] = {}  # statement id -> its event, in this pull
        self.conflicts: set[str] = set()  # statement ids reported as conflicting

    def page(self, statements: list[Any], number: int) -> _Page:
        found = _Page()
        known = self.ledger.pulled_statements(
            s["id"] for s in statements
            if isinstance(s, dict) and isinstance(s.get("id"), str) and len(s["id"]) <= 64)
        for position, statement in enumerate(statements, start=1):
            self.result.statements += 1
            sid = statement.get("id") if isinstance(statement, dict) else None
            where = f"page {number} statement {position} (id {_shown_id(sid)})"
            future = self._stored(statement)
            try:
                self._one(statement, sid, found, known, where, future)
            except ValueError as exc:
                self.result.skipped.append(Skipped(where, str(exc)))
        return found

    def _stored(self, statement: Any) -> str | None:
        """Moves the cursor; the stored time when it lies in the future, else None."""
        stored = statement.get("stored") if isinstance(statement, dict) else None
        if isinstance(stored, str) and len(stored) <= 64:
            try:
                return None if self.cursor.see(stored) else stored
            except ValueError:
                pass
        return None

    def _one(self, statement: Any, sid: Any, found: _Page, known: dict[str, GoalEvent],
             where: str, future: str | None) -> None:
        if not isinstance(sid, str) or not sid:
            raise ValueError("no id")
        if _nesting(statement) > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        verb = statement.get("verb")
        verb_id = verb.get("id") if isinstance(verb, dict) else None
        target = statement.get("object")
        if verb_id == VOIDED:
            ref = target.get("id") if isinstance(target, dict) else None
            if not isinstance(ref, str) or not ref or len(ref) > 64:
                raise ValueError("a voiding statement without object.id (the statement it "
                                 "voids)")
            found.voided.append(ref)
            return
        if (self.verbs and verb_id not in self.verbs) or (self.activities and not (
                isinstance(target, dict) and target.get("id") in self.activities)):
            return
        event = statement_event(statement, self.lookup)
        self.limits.check(event.occurred_at, "the event's date")
        # A forgotten person's events are stored under the keyed hash (record_pulled checks
        # as it writes, so a forget during this pull wins too); compared here the same way.
        email = event.email
        hashed = self.ledger.address_hash(email) if self.forgotten else None
        if hashed in self.forgotten:
            email = FORGOTTEN + str(hashed)
        goal = GoalEvent(email, event.event, event.object, iso(event.occurred_at), sid)
        before = self.read.get(sid) or known.get(sid)
        if before is not None and before != goal:
            if sid in self.conflicts:
                return  # said once is enough
            self.conflicts.add(sid)
            raise ValueError("conflict: this statement id was recorded before with other "
                             "content; the first is kept")
        self.read[sid] = goal
        if future is not None and before is None:
            self.result.notes.append(Skipped(where, f"stored {excerpt(future)}, in the future "
                                             "by this computer's clock: recorded, but the "
                                             "cursor does not move past it"))
        found.events.append(goal)
        found.wheres.append(where)


def _nesting(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (1 for a flat one)."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            level.extend((child, depth + 1) for child in children)
    return deepest


def _shown_id(sid: Any) -> str:
    if not isinstance(sid, str) or not sid:
        return "missing"
    return sid if len(sid) <= 64 and sid.isprintable() else excerpt(sid, 64)


def pull(ledger: Ledger, lrs: Lrs, now: datetime, *, limits: DateLimits | None = None,
         client: httpx.Client | None = None, sleep: Callable[[float], None] | None = None,
         max_pages: int | None = None, lookup: ActorLookup | None = None,
         stop: threading.Event | None = None) -> PullResult:
    """Record the statements stored since the last pull; see the module's docstring."""
    password = os.environ.get(lrs.password_env)
    if not password:
        raise LrsError(f"{lrs.endpoint}: set ${lrs.password_env} to the secret of LRS user "
                       f"{lrs.user!r}")
    own = client is None
    http = client or outside.new_client()
    http.auth = httpx.BasicAuth(lrs.user, password)
    http.headers["X-Experience-API-Version"] = lrs.version
    reader = _Reader(lrs, http, sleep or _sleeper(stop), stop)
    result = PullResult(cursor=ledger.meta(CURSOR))
    cursor = _Cursor(wall_now() + FUTURE_SKEW)
    statements = _Statements(ledger, lrs, result, limits or DateLimits(), lookup, cursor)
    try:
        _pages(ledger, lrs, now, reader, statements, max_pages or MAX_PAGES)
    finally:
        result.requests = reader.requests
        if own:
            http.close()
    return result


def _first_query(lrs: Lrs, since: str | None) -> dict[str, str]:
    query = {"ascending": "true", "limit": str(lrs.page_size)}
    if since:
        query["since"] = since
    if len(lrs.verbs) == 1:
        query["verb"] = lrs.verbs[0]
    if len(lrs.activities) == 1:
        query["activity"] = lrs.activities[0]
    return query


def _pages(ledger: Ledger, lrs: Lrs, now: datetime, reader: _Reader, statements: _Statements,
           max_pages: int) -> None:
    result = statements.result
    base = lrs.endpoint.rstrip("/") + "/"
    url = base + "statements"
    params: dict[str, str] | None = _first_query(lrs, result.cursor)
    seen: set[str] = set()
    for number in range(1, max_pages + 1):
        answer = reader.get(url, params)
        body = _statements_of(answer, url, lrs)
        page = statements.page(body["statements"], number)
        more = body.get("more")
        ended = not isinstance(more, str) or not more.strip()
        result.cursor = statements.cursor.value(
            result.cursor, answer.headers.get("X-Experience-API-Consistent-Through"),
            ended=ended)
        recorded = ledger.record_pulled(
            page.events, "lrs", voided=page.voided,
            cursor=(CURSOR, result.cursor) if result.cursor else None, at=iso(now))
        result.voided += len(page.voided)
        result.revoked += recorded.revoked
        result.added += recorded.added
        result.already_known += recorded.known
        result.skipped.extend(Skipped(page.wheres[index], why)
                              for index, why in recorded.refused)
        if ended:
            return
        assert isinstance(more, str)
        url = _next(more, base, url, seen, lrs)
        params = None
    raise LrsError(f"{lrs.endpoint}: more than {max_pages} pages in one pull; stopped (what "
                   "was read is recorded; pull again to go on)")


def _statements_of(answer: outside.Answer, url: str, lrs: Lrs) -> dict[str, Any]:
    try:  # a statement nested too deep is refused on its own (_Statements), not its page
        body = load_json(answer.body.decode("utf-8"), MAX_PAGE_DEPTH)
    except ValueError as exc:  # UnicodeDecodeError and JSON's errors are ValueErrors
        raise LrsError(f"{url}: the answer is not JSON ({exc}); the cursor stays where it "
                       "was") from None
    if not isinstance(body, dict) or not isinstance(body.get("statements"), list):
        raise LrsError(f"{url}: the answer holds no statements list; is {lrs.endpoint} the "
                       "xAPI endpoint?")
    return body


def _next(more: str, base: str, url: str, seen: set[str], lrs: Lrs) -> str:
    if more in seen:
        raise LrsError(f"{url}: the LRS sent the same 'more' link twice "
                       f"({excerpt(more, 200)}); stopped to avoid a loop (what was read is "
                       "recorded)")
    seen.add(more)
    try:
        following = urljoin(base, more)
        same = _same_origin(following, base)
        httpx.URL(following)
    except outside.BAD_URL as exc:
        raise LrsError(f"{url}: the LRS sent a 'more' link that is not a usable URL "
                       f"({excerpt(more, 200)}: {exc}); not followed, the cursor stays after "
                       "the last recorded page") from None
    if not same:
        raise LrsError(f"{lrs.endpoint}: 'more' points to another server "
                       f"({excerpt(following, 200)}); not followed")
    return following


def _sleeper(stop: threading.Event | None) -> Callable[[float], None]:
    """A pause between attempts that a stop request cuts short."""
    if stop is None:
        return time.sleep

    def pause(seconds: float) -> None:
        stop.wait(seconds)

    return pause


def pull_project(project: Project, now: datetime, *, db: Path | None = None,
                 client: httpx.Client | None = None,
                 sleep: Callable[[float], None] | None = None,
                 stop: threading.Event | None = None) -> PullResult:
    """`pull` with the project's lrs: settings and ledger."""
    lrs = project.settings.lrs
    if lrs is None:
        raise LdmailError("ldmail.yaml has no lrs: block; add one (see the README, "
                          "'Goals from a Learning Record Store')")
    # `forget` waits for a running pull to end before it erases (a forgotten person's events
    # are stored under the keyed hash: record_pulled checks as it writes).
    try:
        with working_fence(ledger_path(project, db), "events pull", stop), \
                Ledger.of(project, db) as ledger:
            return pull(ledger, lrs, now, limits=project.settings.dates, client=client,
                        sleep=sleep, lookup=actor_lookup(project, ledger), stop=stop)
    except StopRequested:  # only the wait for a running forget raises it
        raise LrsError(f"{lrs.endpoint}: {STOPPED} while waiting for a running forget; "
                       "nothing was pulled") from None


def pull_failure(exc: Exception) -> str:
    """One line for whatever ended a pull that a send goes on after."""
    if isinstance(exc, LdmailError):
        return str(exc)
    return f"{type(exc).__name__}: {excerpt(' '.join(str(exc).split()), 200)}"


@dataclass(frozen=True)
class PullAttempt:
    """A pull before a send: what it recorded, or why it ended (the send goes on)."""

    result: PullResult | None  # None: the pull failed
    failure: str = ""  # why, in one line


def pull_before_send(project: Project, now: datetime, *, db: Path | None = None,
                     stop: threading.Event | None = None) -> PullAttempt:
    """`pull_project`, except that whatever ends the pull is returned, not raised."""
    try:
        return PullAttempt(pull_project(project, now, db=db, stop=stop))
    except Exception as exc:  # whatever ends the pull, the send goes on
        return PullAttempt(None, pull_failure(exc))


def pull_logged(project: Project, log: logging.Logger, now: datetime, *,
                db: Path | None = None, stop: threading.Event | None = None) -> None:
    """Pull before a send when lrs: is configured; a failure is logged, never fatal."""
    if project.settings.lrs is None:
        return
    attempt = pull_before_send(project, now, db=db, stop=stop)
    if attempt.result is None:
        log.error("lrs pull failed: %s", attempt.failure)
    else:
        result = attempt.result
        log.info("%s", result.summary())
        for note in result.notes:
            log.warning("  %s: %s", note.position, note.reason)
