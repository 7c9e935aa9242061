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

from tests.smtp_server import SmtpServer, use_smtp  # noqa: E402

NOW = "2026-12-01T10:00+01:00"
HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"


class JitteryServer(SmtpServer):
    """Answers each DATA after 0-25 ms, so a kill can land while a message is in flight."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(random.uniform(0, 0.025))
        return await super().handle_DATA(server, session, envelope)


def ldmail(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ldmail", *(str(a) for a in args)]


def make_project(root: Path, people: int, port: int) -> Path:
    project = root / "p"
    subprocess.run(ldmail("init", project), check=True, capture_output=True, timeout=60)
    rows = [HEADER] + [f"learner{i}@example.org;L{i};T{i};EN;IT;01-01-2015;"
                       for i in range(people)]
    (project / "people.csv").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    use_smtp(project, port)
    return project


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


def treatment(project: Path) -> set[str]:
    with sqlite3.connect(project / ".ldmail" / "ledger.db") as db:
        return {r[0] for r in db.execute(
            "SELECT email FROM enrolments WHERE grp = 'treatment'")}


def kill_point(rows: list[dict[str, Any]], received: Counter[tuple[str, str, str]]) -> str:
    """Where in the send of a message the kill landed, read from ledger and server."""
    claimed = [r for r in rows if r["state"] == "claimed"]
    if not claimed:
        return "between messages (before a claim)" if rows else "before the first claim"
    key = (claimed[0]["campaign"], claimed[0]["step"], claimed[0]["email"])
    return "after the 250, before marking sent" if received[key] else \
        "after the claim, before or during DATA"


def kill_trial(repetitions: int, people: int) -> dict[str, Any]:
    points: Counter[str] = Counter()
    duplicates = lost = unknown = 0
    for _ in range(repetitions):
        with JitteryServer() as server, tempfile.TemporaryDirectory() as tmp:
            project = make_project(Path(tmp), people, server.port)
            process = subprocess.Popen(ldmail("send", "--project", project, "--now", NOW),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(random.uniform(0.25, 1.4))  # start-up is ~0.3 s; sends follow
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            received = Counter(r.key for r in server.received)
            rows = ledger(project)
            points[kill_point(rows, received)] += 1
            subprocess.run(ldmail("send", "--project", project, "--now", NOW),
                           capture_output=True, timeout=120, check=False)
            received = Counter(r.key for r in server.received)
            rows = ledger(project)
            duplicates += sum(1 for n in received.values() if n > 1)
            states = {(r["campaign"], r["step"], r["email"]): r["state"] for r in rows}
            unknown += sum(1 for s in states.values() if s == "unknown")
            for key, state in states.items():
                if state == "sent" and received[key] != 1:
                    lost += 1
            due = {("welcome", "hello", email) for email in treatment(project)}
            lost += sum(1 for key in due if states.get(key) not in ("sent", "unknown"))
    return {"repetitions": repetitions, "duplicates": duplicates, "silently_lost": lost,
            "reported_unknown": unknown, "kill_points": dict(points)}


def overlap_trial(repetitions: int, people: int) -> dict[str, Any]:
    duplicates = busy_lines = delivered = 0
    for _ in range(repetitions):
        with JitteryServer() as server, tempfile.TemporaryDirectory() as tmp:
            project = make_project(Path(tmp), people, server.port)
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
    args = parser.parse_args()
    if shutil.which(sys.executable) is None:
        return 2
    random.seed(args.seed)
    started = time.monotonic()
    results = {"kill": kill_trial(args.kills, args.people),
               "overlap": overlap_trial(args.overlaps, args.people),
               "seconds": round(time.monotonic() - started, 1),
               "date": time.strftime("%Y-%m-%d")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trials.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(json.dumps(results, indent=2))
    bad = results["kill"]["duplicates"] or results["kill"]["silently_lost"] or \
        results["overlap"]["duplicates"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
