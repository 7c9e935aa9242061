"""`ldmail events pull`: new xAPI statements from a Learning Record Store, as goal events.

Reads the statements resource of xAPI 1.0.3 (`GET <endpoint>/statements?since=…&ascending=
true`), page by page through `more`. Each page's events and the cursor (the `stored` time of
the page's last statement, at most the answer's X-Experience-API-Consistent-Through) are
committed in one transaction: a pull killed at any point repeats nothing and loses nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx

from .clock import iso
from .errors import LdmailError
from .events import ActorLookup, Skipped, actor_lookup, load_json, parse_timestamp, statement_event
from .ledger import GoalEvent, Ledger, ledger_path
from .lock import working_fence
from .models import DateLimits, Lrs

if TYPE_CHECKING:
    from .config import Project

CURSOR = "lrs_cursor"  # the meta key of the `stored` time read up to
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
MAX_PAGES = 100_000
ATTEMPTS = 5  # per request, for 429, 5xx and time-outs
MAX_WAIT = 60.0  # longest pause between attempts, whatever Retry-After says


class LrsError(LdmailError):
    """The pull stopped; pages already recorded stay recorded, with the cursor after them."""


@dataclass
class PullResult:
    statements: int = 0
    added: int = 0
    already_known: int = 0
    skipped: list[Skipped] = field(default_factory=list)
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


def _wait(response: httpx.Response | None, attempt: int) -> float:
    """Seconds before the next attempt: what Retry-After says (seconds, or an HTTP date),
    else an exponential back-off; never more than MAX_WAIT."""
    after = response.headers.get("Retry-After", "").strip() if response is not None else ""
    if after.isdigit():
        return min(float(after), MAX_WAIT)
    if after:
        try:
            until = parsedate_to_datetime(after)
        except (TypeError, ValueError):
            pass
        else:
            if until.tzinfo is not None:
                return min(max((until - datetime.now(UTC)).total_seconds(), 0.0), MAX_WAIT)
    return min(0.5 * 2.0 ** attempt, MAX_WAIT)


class _Reader:
    def __init__(self, lrs: Lrs, client: httpx.Client, sleep: Callable[[float], None]) -> None:
        self.lrs, self.client, self.sleep = lrs, client, sleep
        self.requests = 0

    def get(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        lrs = self.lrs
        problem = ""
        for attempt in range(ATTEMPTS):
            response: httpx.Response | None = None
            self.requests += 1
            try:
                response = self.client.get(url, params=params)
            except httpx.TimeoutException:
                problem = "no answer in time"
            except httpx.TransportError as exc:
                problem = f"cannot connect ({exc})"
            else:
                if response.status_code in (401, 403):
                    raise LrsError(
                        f"{lrs.endpoint}: the LRS refused user {lrs.user!r} "
                        f"(HTTP {response.status_code}); check the secret in ${lrs.password_env}"
                        " and that this key may read statements (read-only scope)")
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                elif response.status_code >= 400:
                    raise LrsError(f"{url}: HTTP {response.status_code} "
                                   f"{response.text[:200].strip()}")
                else:
                    return response
            if attempt + 1 < ATTEMPTS:
                self.sleep(_wait(response, attempt))
        raise LrsError(f"{lrs.endpoint}: {problem} after {ATTEMPTS} attempts; the cursor stays "
                       "where it was, the next pull tries again")


def pull(ledger: Ledger, lrs: Lrs, now: datetime, *, limits: DateLimits | None = None,
         client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep,
         max_pages: int = MAX_PAGES, lookup: ActorLookup | None = None) -> PullResult:
    """Record the statements stored since the last pull; see the module's docstring."""
    password = os.environ.get(lrs.password_env)
    if not password:
        raise LrsError(f"{lrs.endpoint}: set ${lrs.password_env} to the secret of LRS user "
                       f"{lrs.user!r}")
    limits = limits or DateLimits()
    own = client is None
    http = client or httpx.Client(timeout=lrs.timeout.total_seconds())
    http.auth = httpx.BasicAuth(lrs.user, password)
    http.headers["X-Experience-API-Version"] = lrs.version
    reader = _Reader(lrs, http, sleep)
    result = PullResult(cursor=ledger.meta(CURSOR))
    verbs, activities = set(lrs.verbs), set(lrs.activities)
    base = lrs.endpoint.rstrip("/") + "/"
    url = base + "statements"
    first = {"ascending": "true", "limit": str(lrs.page_size)}
    if result.cursor:
        first["since"] = result.cursor
    if len(lrs.verbs) == 1:
        first["verb"] = lrs.verbs[0]
    if len(lrs.activities) == 1:
        first["activity"] = lrs.activities[0]
    params: dict[str, str] | None = first
    seen: set[str] = set()
    try:
        for page in range(1, max_pages + 1):
            response = reader.get(url, params)
            try:
                body = load_json(response.text)
            except ValueError as exc:
                raise LrsError(f"{url}: the answer is not JSON ({exc}); the cursor stays "
                               "where it was") from None
            if not isinstance(body, dict) or not isinstance(body.get("statements"), list):
                raise LrsError(f"{url}: the answer holds no statements list; is "
                               f"{lrs.endpoint} the xAPI endpoint?")
            good: list[GoalEvent] = []
            voided: list[str] = []
            last: datetime | None = None
            last_text: str | None = None
            for number, statement in enumerate(body["statements"], start=1):
                result.statements += 1
                sid = statement.get("id") if isinstance(statement, dict) else None
                where = f"page {page} statement {number} (id {sid or 'missing'})"
                stored = statement.get("stored") if isinstance(statement, dict) else None
                if isinstance(stored, str):
                    try:  # the latest, even from an LRS that orders a page the other way
                        moment = parse_timestamp(stored)
                        if last is None or moment > last:
                            last, last_text = moment, stored
                    except ValueError:
                        pass
                try:
                    if not isinstance(sid, str) or not sid:
                        raise ValueError("no id")
                    verb = statement.get("verb")
                    verb_id = verb.get("id") if isinstance(verb, dict) else None
                    if verb_id == VOIDED:
                        target = statement.get("object")
                        ref = target.get("id") if isinstance(target, dict) else None
                        if not isinstance(ref, str) or not ref:
                            raise ValueError("a voiding statement without object.id (the "
                                             "statement it voids)")
                        voided.append(ref)
                        continue
                    target = statement.get("object")
                    if (verbs and verb_id not in verbs) or (activities and not (
                            isinstance(target, dict) and target.get("id") in activities)):
                        continue
                    event = statement_event(statement, lookup)
                    limits.check(event.occurred_at, "the event's date")
                except ValueError as exc:
                    result.skipped.append(Skipped(where, str(exc)))
                    continue
                good.append(GoalEvent(event.email, event.event, event.object,
                                      iso(event.occurred_at), sid))
            cursor = result.cursor
            if last is not None and last_text is not None:
                cursor = last_text
                through = response.headers.get("X-Experience-API-Consistent-Through")
                if through:
                    try:
                        if parse_timestamp(through) < last:
                            cursor = through
                    except ValueError:
                        pass
            added, known, revoked = ledger.record_pulled(
                good, "lrs", voided=voided, cursor=(CURSOR, cursor) if cursor else None,
                at=iso(now))
            result.voided += len(voided)
            result.revoked += revoked
            result.added += added
            result.already_known += known
            result.cursor = cursor
            more = body.get("more")
            if not isinstance(more, str) or not more.strip():
                break
            if more in seen:
                raise LrsError(f"{url}: the LRS sent the same 'more' link twice ({more}); "
                               "stopped to avoid a loop (what was read is recorded)")
            seen.add(more)
            url = urljoin(base, more)
            if not _same_origin(url, base):
                raise LrsError(f"{lrs.endpoint}: 'more' points to another server ({url}); "
                               "not followed")
            params = None
        else:
            raise LrsError(f"{lrs.endpoint}: more than {max_pages} pages in one pull; stopped "
                           "(what was read is recorded; pull again to go on)")
    finally:
        result.requests = reader.requests
        if own:
            http.close()
    return result


def pull_project(project: Project, now: datetime, *, db: Path | None = None,
                 client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> PullResult:
    """`pull` with the project's lrs: settings and ledger."""
    lrs = project.settings.lrs
    if lrs is None:
        raise LdmailError("ldmail.yaml has no lrs: block; add one (see the README, "
                          "'Goals from a Learning Record Store')")
    # `forget` waits for a running pull to end before it erases (a forgotten person's events
    # are stored under the keyed hash: record_pulled checks as it writes).
    with working_fence(ledger_path(project, db), "events pull"), \
            Ledger.of(project, db) as ledger:
        return pull(ledger, lrs, now, limits=project.settings.dates, client=client, sleep=sleep,
                    lookup=actor_lookup(project, ledger))


def pull_logged(project: Project, log: logging.Logger, now: datetime, *,
                db: Path | None = None) -> None:
    """Pull before a send when lrs: is configured; a failure is logged, never fatal."""
    if project.settings.lrs is None:
        return
    try:
        result = pull_project(project, now, db=db)
    except LdmailError as exc:
        log.error("lrs pull failed: %s", exc)
    else:
        log.info("%s", result.summary())
