"""Delivery end to end through the real CLI: the outbox default, `--dry-run`, eight weeks of
time travel against a real SMTP server, and the shape of every message that arrives.

The time-travel tests compute what should have arrived on their own (from the campaign YAML, the
people export and the enrolments the ledger recorded) and compare it with what the SMTP server
actually received, down to the second each message was sent.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from icalendar import Calendar, vRecur

from ..projects import AMSTERDAM, START, at, edit_yaml, from_iso
from .conftest import REPO, Cli
from .public_holidays import closed_days
from .smtp_server import (
    Received,
    SmtpServer,
    free_port,
    group,
    history_messages,
    ledger_rows,
    send,
    use_smtp,
)

WEEKDAYS = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}


# -- an independent reading of the campaign files and the people export ----------------------


def parse_duration(value: object) -> timedelta:
    match = re.fullmatch(r"(\d+)\s*([smhdw])", str(value).strip())
    assert match, f"unexpected duration {value!r} in a campaign file"
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def parse_days(value: str | list[str]) -> frozenset[int]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    days: set[int] = set()
    for item in items:
        first, _, last = str(item).lower().partition("-")
        start = WEEKDAYS[first[:3]]
        end = WEEKDAYS[last[:3]] if last else start
        days.update(range(start, end + 1))
    return frozenset(days)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    opens: time
    closes: time
    zone: ZoneInfo

    def contains(self, moment: datetime, zone: ZoneInfo | None = None) -> bool:
        local = moment.astimezone(zone or self.zone)
        return local.weekday() in self.days and self.opens <= local.time() < self.closes


@dataclass(frozen=True)
class Spec:
    """What a test needs to know of one campaign file."""

    id: str
    sender_domain: str
    steps: tuple[tuple[str, timedelta], ...]
    calendars: dict[str, dict[str, Any]]
    window: Window
    min_gap: timedelta
    anchor: str | None
    # Public holidays and blackout days (the campaign's `holidays:` or ldmail.yaml's).
    closed: frozenset[date] = frozenset()
    starts: date = START
    goal: tuple[str, str] | None = None  # event, object pattern
    trigger: tuple[str, str] | None = None
    repeat: str = "per-object"
    conditions: dict[str, str] = field(default_factory=dict)  # step id -> when:
    variants: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    to: dict[str, str] = field(default_factory=dict)  # step id -> who it goes to (manager)

    def opens(self, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether a message may go at `moment`: inside the window, on an open day."""
        return self.window.contains(moment, zone) and \
            moment.astimezone(zone).date() not in self.closed


def load_campaigns(project: Path) -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    settings_file = project / "ldmail.yaml"
    settings = (yaml.safe_load(settings_file.read_text(encoding="utf-8")) or {}) \
        if settings_file.exists() else {}
    for path in sorted((project / "campaigns").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        window = data.get("send_window") or {}
        opens, closes = str(window.get("hours", "09:00-17:00")).split("-")
        sender = re.search(r"@([\w.-]+)", data["sender"])
        assert sender is not None
        specs[path.stem] = Spec(
            id=path.stem,
            sender_domain=sender[1],
            steps=tuple((s["id"], parse_duration(s["after"])) for s in data["steps"]),
            calendars={s["id"]: s["calendar"] for s in data["steps"] if s.get("calendar")},
            window=Window(parse_days(window.get("days", "mon-fri")), time.fromisoformat(opens),
                          time.fromisoformat(closes),
                          ZoneInfo(window.get("timezone", "Europe/Amsterdam"))),
            min_gap=parse_duration(data.get("min_gap", "1d")),
            anchor=data.get("anchor"),
            closed=closed_days(data["holidays"] if "holidays" in data
                               else settings.get("holidays")),
            starts=data["starts"],
            goal=_rule(data.get("goal")), trigger=_rule(data.get("trigger")),
            repeat=(data.get("trigger") or {}).get("repeat", "per-object"),
            conditions={s["id"]: s["when"] for s in data["steps"] if s.get("when")},
            variants={s["id"]: tuple((v["id"], float(v.get("weight", 1)))
                                     for v in s["variants"])
                      for s in data["steps"] if s.get("variants")},
            to={s["id"]: s["to"] for s in data["steps"] if s.get("to")})
        assert not any(s.get("wait_until") for s in data["steps"]), "not modelled here"
    return specs


def _rule(data: dict[str, Any] | None) -> tuple[str, str] | None:
    return None if data is None else (data["event"], data.get("object") or "*")


# -- what a person did in the learning platform, and what the campaign YAML makes of it --------

Event = tuple[str, str, datetime]  # event, object, when


def ledger_events(project: Path) -> dict[str, list[Event]]:
    """The learning events the ledger recorded, by address (the import is tested elsewhere)."""
    found: dict[str, list[Event]] = {}
    for row in ledger_rows(project, "SELECT email, event, object, occurred_at FROM events"
                                    " WHERE voided_at IS NULL"):
        found.setdefault(row["email"], []).append(
            (row["event"], row["object"], from_iso(row["occurred_at"])))
    return found


def first_event(events: list[Event], rule: tuple[str, str], since: datetime | None = None
                ) -> datetime | None:
    times = [at for event, target, at in events if event == rule[0]
             and fnmatchcase(target, rule[1]) and (since is None or at >= since)]
    return min(times, default=None)


def condition_holds(condition: str, events: list[Event], moment: datetime) -> bool:
    """A step's when: the shipped conditions are Python expressions too (not, and, calls,
    comparisons), so Python evaluates them here with helpers written from the README."""
    def matching(event: str, pattern: str = "*") -> list[datetime]:
        return [at for name, target, at in events
                if name == event and fnmatchcase(target, pattern) and at <= moment]

    def days_since(event: str, pattern: str = "*") -> float:
        found = matching(event, pattern)  # never: NaN, which every comparison finds false
        return (moment - max(found)).total_seconds() / 86400 if found else float("nan")

    helpers = {"reached": lambda e, p="*": bool(matching(e, p)),
               "count": lambda e, p="*": len(matching(e, p)), "days_since": days_since}
    return bool(eval(condition, {"__builtins__": {}}, helpers))  # noqa: S307 (our own YAML)


def expected_variant(campaign: str, step: str, email: str,
                     variants: tuple[tuple[str, float], ...]) -> str:
    """The README's rule: a point drawn from SHA-256 of campaign, step and address falls
    into one variant's share of the weights."""
    digest = hashlib.sha256(f"variant\x00{campaign}\x00{step}\x00{email}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(w for _, w in variants)
    for name, weight in variants:
        point -= weight
        if point < 0:
            return name
    return variants[-1][0]


@dataclass(frozen=True)
class Row:
    zone: ZoneInfo | None
    attributes: dict[str, str]


def load_people(project: Path) -> dict[str, Row]:
    """The export as audiences.yaml maps it: address -> time zone and raw attributes."""
    people = yaml.safe_load((project / "audiences.yaml").read_text(encoding="utf-8"))["people"]
    text = (project / people["source"]).read_text(encoding="utf-8-sig")
    header = text.split("\n", 1)[0]
    reader = csv.DictReader(text.splitlines(), delimiter=";" if ";" in header else ",")
    found: dict[str, Row] = {}
    for record in reader:
        attributes = {name: (record.get(column) or "").strip()
                      for name, column in people["columns"].items()}
        zone = attributes.get("timezone")
        found[attributes["email"].lower()] = Row(ZoneInfo(zone) if zone else None, attributes)
    return found


def parse_day(text: str) -> date:
    for fmt in ("%d-%m-%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise AssertionError(f"unexpected date {text!r} in the export")


# -- what a good message looks like -----------------------------------------------------------


def unsubscribe_targets(message: EmailMessage) -> list[str]:
    return re.findall(r"<([^<>]+)>", str(message["List-Unsubscribe"]))


def assert_well_formed(received: Received, spec: Spec, *, mailto: str,
                       https: str | None) -> EmailMessage:
    """Multipart/alternative with text and HTML, proper ids and dates, List-Unsubscribe."""
    message = received.message
    recipient = received.rcpt_tos[0]
    assert received.rcpt_tos == (recipient,)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "text/html"]
    assert isinstance(parts[0], EmailMessage) and isinstance(parts[1], EmailMessage)
    assert parts[0].get_content().strip() and "<html" in parts[1].get_content().lower()
    assert message["To"].addresses[0].addr_spec.lower() == recipient.lower()
    assert message["From"].addresses[0].domain == spec.sender_domain
    assert received.mail_from == message["From"].addresses[0].addr_spec
    assert re.fullmatch(rf"<[^<>@\s]+@{re.escape(spec.sender_domain)}>", message["Message-ID"])
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    targets = unsubscribe_targets(message)
    assert targets[0].startswith(f"mailto:{mailto}?subject=unsubscribe"), targets
    # Mail clients read List-Unsubscribe raw: it must not arrive RFC 2047-encoded.
    raw_header = received.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    assert f"List-Unsubscribe: <mailto:{mailto}?subject=".encode() in raw_header
    if https is None:
        assert len(targets) == 1 and message["List-Unsubscribe-Post"] is None
    else:
        assert len(targets) == 2 and targets[1].startswith(f"{https}?token="), targets
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Bcc"] is None and message["Cc"] is None
    return message


def calendar_part(message: EmailMessage) -> EmailMessage | None:
    found = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(found) <= 1
    part = found[0] if found else None
    assert part is None or isinstance(part, EmailMessage)
    return part


def assert_invite(part: EmailMessage, calendar: dict[str, Any], sent: datetime, zone: ZoneInfo,
                  attendee: str) -> None:
    """An RFC 5545 request: weekly RRULE, first occurrence on the right weekday and time."""
    parsed = Calendar.from_ical(part.get_content())
    assert str(parsed["METHOD"]).upper() == "REQUEST"
    events = list(parsed.walk("VEVENT"))
    assert len(events) == 1
    event = events[0]
    rule = event["RRULE"]
    assert isinstance(rule, vRecur)
    assert rule["FREQ"] == ["WEEKLY"]
    assert rule["COUNT"] == [int(calendar.get("weeks", 12))]
    start = event.decoded("DTSTART")
    assert isinstance(start, datetime) and start.tzinfo is not None
    local = start.astimezone(zone)
    assert local.weekday() == WEEKDAYS[str(calendar["weekday"])[:3].lower()]
    assert local.time() == time.fromisoformat(str(calendar["time"]))
    assert sent < start <= sent + timedelta(days=7), (sent, start)
    assert event.decoded("DTEND") - start == parse_duration(calendar.get("duration", "60m"))
    assert str(event["SUMMARY"]) == calendar["title"]
    assert str(event["ATTENDEE"]).lower() == f"mailto:{attendee.lower()}"


# -- 1. the outbox default --------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: any private mode we see was asked for explicitly, not inherited."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_outbox_default_writes_one_private_eml_per_due_message(
        project: Path, cli: Cli, open_umask: None) -> None:
    now = at(START, 10)
    result = send(cli, project, now)
    assert result.exit_code == 0, result.output

    outbox = project / ".ldmail" / "outbox"
    files = sorted(outbox.iterdir())
    assert files and all(f.suffix == ".eml" for f in files), files  # no partial files left
    sent = ledger_rows(project, "SELECT email, message_id, state FROM messages")
    treatment, holdout = group(project, "treatment"), group(project, "holdout")
    assert len(files) == len(sent) == len(treatment) >= 5
    assert {r["state"] for r in sent} == {"sent"}
    assert re.search(rf"^(?:\S+ )?sent {len(files)} ", result.stdout, re.M), result.stdout

    ids = {r["message_id"]: r["email"] for r in sent}
    recipients = set()
    for path in files:
        message = Received("", ("x",), path.read_bytes()).message
        recipient = message["To"].addresses[0].addr_spec
        assert ids[message["Message-ID"]] == recipient
        assert parsedate_to_datetime(message["Date"]) == now
        recipients.add(recipient)
    assert recipients == treatment and not recipients & holdout

    state = project / ".ldmail"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
    assert (state / "ledger.db").is_file()

    again = send(cli, project, now)
    assert again.exit_code == 0, again.output
    assert re.search(r"^(?:\S+ )?sent 0 ", again.stdout, re.M), again.stdout
    assert sorted(outbox.iterdir()) == files
    assert len(ledger_rows(project, "SELECT id FROM messages")) == len(sent)


# -- 9. --dry-run -----------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def would_send(output: str) -> int:
    match = re.search(r"^(?:\S+ )?would send (\d+) ", output, re.M)
    assert match, output
    return int(match[1])


def test_dry_run_changes_nothing_and_counts_what_a_real_run_sends(project: Path,
                                                                   cli: Cli) -> None:
    first = at(START, 10)
    dry = send(cli, project, first, "--dry-run")
    assert dry.exit_code == 0, dry.output
    count = would_send(dry.stdout)
    assert count > 0
    assert not (project / ".ldmail").exists()  # no ledger, no lock, no outbox

    real = send(cli, project, first)
    assert real.exit_code == 0, real.output
    assert re.search(rf"^(?:\S+ )?sent {count} ", real.stdout, re.M), real.stdout

    # With a ledger in place: the second step is due three days later.
    later = at(START + timedelta(days=3), 10)
    before = snapshot(project / ".ldmail")
    dry = send(cli, project, later, "--dry-run")
    assert dry.exit_code == 0, dry.output
    count = would_send(dry.stdout)
    assert count > 0
    assert snapshot(project / ".ldmail") == before
    real = send(cli, project, later)
    assert re.search(rf"^(?:\S+ )?sent {count} ", real.stdout, re.M), real.stdout


def test_dry_run_never_contacts_the_smtp_server(project: Path, cli: Cli) -> None:
    use_smtp(project, free_port())  # nothing listens there: a connection attempt would fail
    dry = send(cli, project, at(START, 10), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert would_send(dry.stdout) > 0
    assert not (project / ".ldmail").exists()


# -- 2. time travel ---------------------------------------------------------------------------


def travel_moments(start: date = START, weeks: int = 8, extra_every: int = 6) -> list[datetime]:
    """Every day at 09:30 in Amsterdam, on weekdays also at 10:00, and every few days (a
    different weekday each time) also at 07:00, 17:30 and 20:00.

    09:30 is inside the usual window in Amsterdam but not in London (08:30) nor in a 10:00-16:00
    window; 17:30 is outside it in Amsterdam but inside it in London (16:30).
    """
    moments = []
    for offset in range(weeks * 7):
        day = start + timedelta(days=offset)
        moments.append(at(day, 9, 30))
        if day.weekday() < 5:
            moments.append(at(day, 10))
        if offset % extra_every == 2:
            moments += [at(day, 7), at(day, 17, 30), at(day, 20)]
    return sorted(moments)


def rounds_of(events: list[Event], rule: tuple[str, str], since: datetime
              ) -> list[tuple[datetime, str]]:
    """A trigger's rounds: the first matching event of each object, earliest first."""
    first: dict[str, datetime] = {}
    for event, target, moment in sorted(events, key=lambda e: e[2]):
        if event == rule[0] and fnmatchcase(target, rule[1]) and moment >= since:
            first.setdefault(target, moment)
    return sorted((moment, target) for target, moment in first.items())


def check_round(spec: Spec, campaign: str, email: str, suffix: str, anchor: datetime,
                begins: datetime, zone: ZoneInfo, moments: list[datetime],
                arrived: dict[tuple[str, str, str], datetime],
                stored: dict[tuple[str, str, str], dict[str, Any]], events: list[Event],
                goal_at: datetime | None, enrolment: dict[str, Any],
                checked: set[tuple[str, str, str]]) -> tuple[str, datetime | None]:
    """One pass through a campaign's steps (one round of a triggered one): each step must
    have arrived exactly when the calendar, the goal and its condition say. Returns how the
    round ended (completed, goal, missing) and the moment its last step was decided."""
    previous: datetime | None = None
    decided: datetime | None = None
    for step, after in spec.steps:
        key = (campaign, step + suffix, email)
        checked.add(key)
        due = max(anchor + after, begins)
        if previous is not None:
            due = max(due, previous + spec.min_gap)
        expected = next((m for m in moments if m >= due and spec.opens(m, zone)), None)
        if expected is not None and goal_at is not None and goal_at <= expected:
            # The goal was reached before the step could go: the sequence ends there.
            assert key not in arrived, f"{key} arrived after the goal ({goal_at})"
            assert enrolment["state"] == "converted", (key, enrolment["state"])
            assert from_iso(enrolment["exited_at"]) <= expected, key
            return "goal", decided
        condition = spec.conditions.get(step)
        if expected is not None and condition is not None and \
                not condition_holds(condition, events, expected):
            assert key not in arrived, f"{key} arrived though {condition!r} was false"
            assert key in stored and stored[key]["state"] == "skipped", key
            assert stored[key]["error"] == f"condition false: {condition}", key
            decided = expected
            continue  # a skipped step sends nothing: the next is spaced from `previous`
        if key in arrived:
            assert arrived[key] == expected, f"{key}: sent {arrived[key]}, due {expected}"
            if step in spec.variants:
                assert stored[key]["variant"] == expected_variant(
                    campaign, step, email, spec.variants[step]), key
            previous = decided = arrived[key]
            continue
        if expected is not None:  # it had its chance: only leaving the audience explains it
            assert enrolment["state"] == "left", f"{key} never arrived (due {expected})"
            assert from_iso(enrolment["exited_at"]) <= expected, key
        return "missing", decided
    return "completed", decided


def travel(cli: Cli, project: Path, moments: list[datetime]) -> None:
    for moment in moments:
        result = send(cli, project, moment)
        assert result.exit_code == 0, f"{moment}: {result.output}"


def check_travel(cli: Cli, project: Path, server: SmtpServer, moments: list[datetime], *,
                 mailto: str, https: str | None) -> dict[str, int]:
    """Everything the server received against what the calendar says should have arrived."""
    campaigns, people = load_campaigns(project), load_people(project)
    received = server.received
    # The ledger's key of each message, by its Message-ID: a triggered campaign keys a step
    # with the object its round is for (well-done@course:x); the others by the step alone.
    stored = {(m["campaign"], m["step"], m["email"]): m for m in ledger_rows(
        project, "SELECT campaign, step, email, state, variant, error, message_id FROM messages")}
    by_id = {m["message_id"]: key for key, m in stored.items() if m["message_id"]}
    arrived: dict[tuple[str, str, str], datetime] = {}
    ids: Counter[str] = Counter()
    for item in received:
        campaign, step, recipient = item.key
        spec = campaigns[campaign]
        message = assert_well_formed(item, spec, mailto=mailto, https=https)
        ids[message["Message-ID"]] += 1
        key = by_id[str(message["Message-ID"])]
        email = key[2]  # the learner the message is about (a manager step goes to the manager)
        assert key[0] == campaign and key[1].split("@")[0] == step, key
        if spec.to.get(step) == "manager":
            assert recipient == people[email].attributes["manager_email"].lower(), key
        else:
            assert recipient == email, key
        sent = parsedate_to_datetime(message["Date"])
        zone = people[email].zone or spec.window.zone
        assert sent in moments, f"{item.key}: Date {sent} is not a moment we ran at"
        assert spec.window.contains(sent, zone), f"{item.key}: {sent} outside the send window"
        assert sent.astimezone(zone).date() not in spec.closed, \
            f"{item.key}: {sent} is a public holiday or blackout day"
        invite = calendar_part(message)
        assert (invite is not None) == (step in spec.calendars), item.key
        if invite is not None:
            assert_invite(invite, spec.calendars[step], sent, zone, email)
        assert key not in arrived, f"{key} arrived twice"
        arrived[key] = sent
    assert max(ids.values()) == 1, "a Message-ID was used twice"

    enrolments = ledger_rows(project, "SELECT * FROM enrolments")
    treatment = {(e["campaign"], e["email"]) for e in enrolments if e["grp"] == "treatment"}
    assert {(c, e) for c, _, e in arrived} <= treatment, "mail to someone not in treatment"
    events = ledger_events(project)
    complete = Counter[str]()
    checked: set[tuple[str, str, str]] = set()
    for enrolment in enrolments:
        campaign, email = enrolment["campaign"], enrolment["email"]
        spec, person = campaigns[campaign], people[email]
        zone = person.zone or spec.window.zone
        got = {step for c, step, e in arrived if (c, e) == (campaign, email)}
        if enrolment["grp"] == "holdout":
            assert not got, f"holdout member {email} received {campaign}: {got}"
            continue
        assert enrolment["grp"] == "treatment"
        mine = events.get(email, [])
        goal_at = first_event(mine, spec.goal) if spec.goal else None
        if spec.trigger:
            # A round per object (repeat: per-object), each once the one before is done, with
            # day 0 at the object's first event since the campaign starts.
            starts = datetime.combine(spec.starts, time(0), tzinfo=spec.window.zone)
            rounds = rounds_of(mine, spec.trigger, starts)
            assert rounds, f"{campaign}: {email} enrolled with no trigger"
            enrolled = from_iso(enrolment["enrolled_at"])
            assert enrolled in moments and enrolled >= rounds[0][0], (campaign, email)
            begins: datetime | None = enrolled
            for number, (anchor, target) in enumerate(rounds):
                if number and spec.repeat == "once":
                    break
                assert begins is not None
                outcome, done = check_round(
                    spec, campaign, email, f"@{target}", anchor, begins, zone, moments,
                    arrived, stored, mine, goal_at, enrolment, checked)
                if outcome != "completed":
                    break
                complete[campaign] += 1
                # The next round begins at the first run after this one was done.
                begins = next((m for m in moments if done is not None and m > done), None)
                if begins is None:
                    break
            continue
        if spec.anchor:
            start = parse_day(person.attributes[spec.anchor])
            anchor = datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC)
            assert from_iso(enrolment["anchor_at"]) == anchor, (campaign, email)
        else:
            anchor = from_iso(enrolment["enrolled_at"])
            assert anchor in moments
        outcome, _ = check_round(spec, campaign, email, "", anchor, anchor, zone, moments,
                                 arrived, stored, mine, goal_at, enrolment, checked)
        complete[campaign] += outcome == "completed"
        assert (outcome == "completed") == (enrolment["state"] == "completed"), \
            (campaign, email, outcome)
    assert set(arrived) <= checked, f"arrived unaccounted for: {set(arrived) - checked}"

    # `ldmail history` shows exactly what the server received, for a few people: what they
    # received, and the notes about them that went to their manager.
    by_person = Counter(e for _, _, e in arrived)
    zoned = [e for e in by_person if people[e].zone is not None]
    holdout = sorted({e["email"] for e in enrolments if e["grp"] == "holdout"})
    chosen = {by_person.most_common(1)[0][0], min(by_person), *zoned[:1], *holdout[:1]}
    for email in sorted(chosen):
        result = cli("history", email, "--project", project)
        assert result.exit_code == 0, result.output
        shown, shown_states = history_messages(result.stdout)
        expected_ids = sorted({str(r.message["Message-ID"]) for r in server.to(email)} |
                              {stored[key]["message_id"] for key in arrived if key[2] == email})
        assert sorted(shown) == expected_ids, email
        assert shown_states == ["sent"] * len(expected_ids), email
    return dict(complete)


def test_time_travel_over_the_scaffold(project: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    use_smtp(project, smtp_server.port)
    # Start on a Friday evening: enrolled after hours, the first step waits for the weekend to
    # pass and the window to open on Monday morning.
    friday = START - timedelta(days=4)
    moments = [at(friday, 20), *travel_moments(friday + timedelta(days=1))]
    travel(cli, project, moments)
    complete = check_travel(cli, project, smtp_server, moments,
                            mailto="unsubscribe@example.org", https=None)
    assert complete == {"welcome": len(group(project, "treatment", "welcome"))}
    assert len(smtp_server.received) == 2 * complete["welcome"]


@pytest.mark.slow
def test_time_travel_over_the_shipped_example(example: Path, cli: Cli,
                                              smtp_server: SmtpServer) -> None:
    """Eight weeks of the shipped example with what its people did in the learning platform:
    goals that end sequences, completions and registrations that start campaigns, conditions
    that branch, an A/B test; every message checked against the YAML read independently."""
    # The export's first 200 rows (the example's original people) have every persona, both
    # zones besides Amsterdam's and newcomers who start during the eight weeks; sending the
    # eight weeks over SMTP to all 1,000 would take three minutes instead of well under one.
    export = example / "people.csv"
    export.write_bytes(b"".join(export.read_bytes().splitlines(keepends=True)[:201]))
    settings = yaml.safe_load((example / "ldmail.yaml").read_text(encoding="utf-8"))
    use_smtp(example, smtp_server.port)
    for name in ("lms-export.csv", "xapi-statements.json"):  # dated over the eight weeks
        imported = cli("events", "import", REPO / "events" / name, "--project", example)
        assert imported.exit_code == 0, imported.output
    moments = travel_moments()
    travel(cli, example, moments)
    complete = check_travel(cli, example, smtp_server, moments,
                            mailto=settings["unsubscribe"]["mailto"],
                            https=settings["unsubscribe"].get("url"))
    campaigns = load_campaigns(example)
    # Every campaign mailed people, and all but the longest finished within the eight weeks.
    assert {c for c, _, _ in smtp_server.keys()} == set(campaigns)
    assert sum(1 for c in campaigns if complete.get(c)) >= len(campaigns) - 2, complete
    # What the journeys did, so none of the checks above passed for want of cases: people who
    # reached the goal mid-sequence, both branches of a condition, and both variants.
    mid_way = ledger_rows(example, "SELECT count(*) AS n FROM enrolments e WHERE state = "
                                   "'converted' AND EXISTS (SELECT 1 FROM messages m WHERE "
                                   "m.campaign = e.campaign AND m.email = e.email AND m.state = "
                                   "'sent')")
    assert mid_way[0]["n"] > 0
    steps = Counter((m["campaign"], m["step"].split("@")[0], m["state"]) for m in ledger_rows(
        example, "SELECT campaign, step, state FROM messages"))  # a round's step@object too
    branches = [(c, s) for c, spec in campaigns.items() for s in spec.conditions]
    assert branches and all(steps[(c, s, "sent")] + steps[(c, s, "skipped")] > 0
                            for c, s in branches), steps
    assert any(steps[(c, s, "skipped")] for c, s in branches), steps
    variants = Counter(row["variant"] for row in ledger_rows(
        example, "SELECT variant FROM messages WHERE variant IS NOT NULL"))
    assert len(variants) == 2, variants
    # Managers heard about people who ignored three reminders (each checked above against the
    # export's manager column), and not about those who had registered by then.
    notes = [(c, s) for c, s, state in steps if campaigns[c].to.get(s) == "manager"
             and state == "sent"]
    assert notes, steps


# -- 3. the shape of a message ----------------------------------------------------------------


def test_messages_are_complete_with_unsubscribe_and_calendar_invite(
        project: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    url = "https://learning.example.org/unsubscribe"
    use_smtp(project, smtp_server.port)
    edit_yaml(project / "ldmail.yaml",
              lambda s: s.update(unsubscribe={"mailto": "unsubscribe@example.org", "url": url}))
    invite = {"title": "Weekly learning moment", "weekday": "fri", "time": "15:00",
              "duration": "45m", "weeks": 6}
    edit_yaml(project / "campaigns" / "welcome.yaml",
              lambda c: c["steps"][0].update(calendar=invite))
    spec = load_campaigns(project)["welcome"]

    first, second = at(START, 10), at(START + timedelta(days=3), 11, 30)
    for moment in (first, second):
        result = send(cli, project, moment)
        assert result.exit_code == 0, result.output
    received = smtp_server.received
    treatment = group(project, "treatment")
    assert {r.rcpt_tos[0] for r in received} == treatment
    assert len(received) == 2 * len(treatment)
    tokens: set[str] = set()
    for item in received:
        message = assert_well_formed(item, spec, mailto="unsubscribe@example.org", https=url)
        step = str(message["X-Ldmail-Step"])
        sent = parsedate_to_datetime(message["Date"])
        assert sent == (first if step == "hello" else second)
        html = message.get_body(("html",))
        assert html is not None
        assert "utm_source=ldmail" in html.get_content()
        if step == "hello" and message["Content-Language"] == "en":
            assert "Ten minutes is enough to find your first course." in html.get_content()
        part = calendar_part(message)
        assert (part is not None) == (step == "hello")
        if part is not None:
            assert part.get_param("method") == "REQUEST"
            assert_invite(part, invite, sent, AMSTERDAM, item.rcpt_tos[0])
        mailto, https = unsubscribe_targets(message)
        token = https.rsplit("token=", 1)[1]
        assert token in mailto
        tokens.add(f"{item.rcpt_tos[0]} {token}")
    # one token per person, the same in both of their messages, different between people
    assert len(tokens) == len(treatment) == len({t.split()[1] for t in tokens})
