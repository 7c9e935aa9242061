"""Fault trials: SIGKILL `ldmail send` at random moments, and start sends on top of each other.

    python benchmarks/trials.py [--kills 60] [--overlaps 120] [--people 40] [--seed 7]

Each repetition uses a fresh project against a real SMTP server on loopback (aiosmtpd) that
answers each DATA after a small random delay, so kills land before a claim, after a claim, in
the middle of DATA, after the server's 250 and before the ledger marks the message sent. After
every kill the script runs `ldmail send` once more to completion and checks, against what the
server received:

- no (campaign, step, person) is received twice;
- every message the ledger calls `sent` was received once;
- every due message is `sent` or reported `unknown`: none silently missing.

The overlap trial starts three `ldmail send` at once per repetition and checks for duplicates.
Only loopback traffic; every repetition is bounded by time-outs and the script stops itself.

With `--journeys` the project is a journey: half the people registered for a course an hour
before the send (an imported event), the welcome campaign's second and third steps are
conditions on that (each person gets one, the other is `skipped`), and a second campaign is
started by the registration. A due message must then end `sent` or `unknown`, a step whose
condition is false `skipped`, and the triggered campaign must reach exactly the registered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.smtp_server import SmtpServer, use_smtp  # noqa: E402
from tests.projects import edit_yaml  # noqa: E402

NOW = "2026-12-01T10:00+01:00"
HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"


class JitteryServer(SmtpServer):
    """Answers each DATA after 0-25 ms, so a kill can land while a message is in flight."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(random.uniform(0, 0.025))
        return await super().handle_DATA(server, session, envelope)


def ldmail(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ldmail", *(str(a) for a in args)]


JOURNEY = {  # the welcome campaign as a journey: every step due at once, two of them branches
    "holdout": "0%", "min_gap": "0s", "goal": {"event": "completed"}, "steps": [
        {"id": "hello", "after": "0d", "template": "welcome/hello"},
        {"id": "nudge", "after": "0d", "template": "welcome/first-course",
         "when": "reached('registered')"},
        {"id": "tip", "after": "0d", "template": "welcome/first-course",
         "when": "not reached('registered')"}]}
WELCOME_BACK = """title: Welcome back
phase: activate
starts: 2026-11-01
trigger: {event: registered}
sender: "Learning Team <learning@example.org>"
send_window: {days: mon-fri, hours: "09:00-17:00", timezone: Europe/Amsterdam}
steps:
  - {id: thanks, after: 0d, template: welcome/hello}
"""


def make_project(root: Path, people: int, port: int, journeys: bool = False) -> Path:
    project = root / "p"
    subprocess.run(ldmail("init", project), check=True, capture_output=True, timeout=60)
    rows = [HEADER] + [f"learner{i}@example.org;L{i};T{i};EN;IT;01-01-2015;"
                       for i in range(people)]
    (project / "people.csv").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    use_smtp(project, port)
    if journeys:
        edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(JOURNEY))
        (project / "campaigns" / "welcome-back.yaml").write_text(WELCOME_BACK, "utf-8")
        events = project / "registrations.csv"
        events.write_text("E-mail;Event;Course;Timestamp\n" + "".join(
            f"learner{i}@example.org;registered;course:excel;2026-12-01T08:00:00Z\n"
            for i in range(0, people, 2)), encoding="utf-8")
        subprocess.run(ldmail("events", "import", events, "--project", project), check=True,
                       capture_output=True, timeout=60)
    return project


def expected(project: Path, journeys: bool) -> dict[tuple[str, str, str], set[str]]:
    """The states each message may end in once sends ran to completion."""
    allowed = {"sent", "unknown"}
    found: dict[tuple[str, str, str], set[str]] = {}
    for email in treatment(project, "welcome"):
        found[("welcome", "hello", email)] = allowed
        if journeys:
            registered = int(email.removeprefix("learner").split("@")[0]) % 2 == 0
            found[("welcome", "nudge", email)] = allowed if registered else {"skipped"}
            found[("welcome", "tip", email)] = {"skipped"} if registered else allowed
            if registered:  # a triggered campaign keys its round's steps with the object
                found[("welcome-back", "thanks@course:excel", email)] = allowed
    return found


def ledger(project: Path) -> list[dict[str, Any]]:
    """Message rows; none when the kill came before the ledger had its tables."""
    path = project / ".ldmail" / "ledger.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(
                "SELECT campaign, step, email, state FROM messages")]
        except sqlite3.OperationalError:
            return []


def treatment(project: Path, campaign: str) -> set[str]:
    with sqlite3.connect(project / ".ldmail" / "ledger.db") as db:
        return {r[0] for r in db.execute(
            "SELECT email FROM enrolments WHERE grp = 'treatment' AND campaign = ?",
            (campaign,))}


def kill_point(rows: list[dict[str, Any]], received: Counter[tuple[str, str, str]]) -> str:
    """Where in the send of a message the kill landed, read from ledger and server."""
    claimed = [r for r in rows if r["state"] == "claimed"]
    if not claimed:
        return "between messages (before a claim)" if rows else "before the first claim"
    key = (claimed[0]["campaign"], claimed[0]["step"], claimed[0]["email"])
    return "after the 250, before marking sent" if received[key] else \
        "after the claim, before or during DATA"


def kill_trial(repetitions: int, people: int, journeys: bool) -> dict[str, Any]:
    points: Counter[str] = Counter()
    duplicates = lost = unknown = wrong = 0
    for _ in range(repetitions):
        with JitteryServer() as server, tempfile.TemporaryDirectory() as tmp:
            project = make_project(Path(tmp), people, server.port, journeys)
            process = subprocess.Popen(ldmail("send", "--project", project, "--now", NOW),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Start-up is ~0.3 s, then sends follow; a journey's import and sync take longer.
            time.sleep(random.uniform(0.25, 1.4) * (2 if journeys else 1))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            received = Counter(r.key for r in server.received)
            rows = ledger(project)
            points[kill_point(rows, received)] += 1
            # One step a person per run: a journey's three steps need three more runs.
            for _ in range(4 if journeys else 1):
                subprocess.run(ldmail("send", "--project", project, "--now", NOW),
                               capture_output=True, timeout=120, check=False)
            received = Counter(r.key for r in server.received)
            rows = ledger(project)
            duplicates += sum(1 for n in received.values() if n > 1)
            states = {(r["campaign"], r["step"], r["email"]): r["state"] for r in rows}
            unknown += sum(1 for s in states.values() if s == "unknown")
            for (campaign, step, email), state in states.items():
                # The server sees the step id; the ledger keys a triggered round step@object.
                if state == "sent" and received[(campaign, step.split("@")[0], email)] != 1:
                    lost += 1
            for key, ends in expected(project, journeys).items():
                if states.get(key) not in ends:
                    lost += ends != {"skipped"}  # a due message neither sent nor unknown
                    wrong += ends == {"skipped"}  # a false condition not recorded as such
            wrong += sum(1 for key in states if key[0] == "welcome-back"
                         and int(key[2].removeprefix("learner").split("@")[0]) % 2)
    return {"repetitions": repetitions, "duplicates": duplicates, "silently_lost": lost,
            "reported_unknown": unknown, "wrong_branch": wrong, "kill_points": dict(points)}


def overlap_trial(repetitions: int, people: int, journeys: bool) -> dict[str, Any]:
    duplicates = busy_lines = delivered = 0
    for _ in range(repetitions):
        with JitteryServer() as server, tempfile.TemporaryDirectory() as tmp:
            project = make_project(Path(tmp), people, server.port, journeys)
            runs = [subprocess.Popen(ldmail("send", "--project", project, "--now", NOW),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for _ in range(3)]
            for run in runs:
                out, _ = run.communicate(timeout=120)
                busy_lines += "another ldmail send is running" in out
            received = Counter(r.key for r in server.received)
            duplicates += sum(1 for n in received.values() if n > 1)
            delivered += len(received)
    return {"repetitions": repetitions, "processes_per_repetition": 3,
            "duplicates": duplicates, "messages_delivered": delivered,
            "runs_that_found_another_running": busy_lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--overlaps", type=int, default=120)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--journeys", action="store_true",
                        help="a project with a trigger and step conditions (see above)")
    args = parser.parse_args()
    if shutil.which(sys.executable) is None:
        return 2
    random.seed(args.seed)
    started = time.monotonic()
    results = {"project": "journeys" if args.journeys else "welcome",
               "kill": kill_trial(args.kills, args.people, args.journeys),
               "overlap": overlap_trial(args.overlaps, args.people, args.journeys),
               "seconds": round(time.monotonic() - started, 1),
               "date": time.strftime("%Y-%m-%d")}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "trials-journeys.json" if args.journeys else "trials.json"
    (args.out / name).write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(json.dumps(results, indent=2))
    bad = results["kill"]["duplicates"] or results["kill"]["silently_lost"] or \
        results["kill"]["wrong_branch"] or results["overlap"]["duplicates"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
