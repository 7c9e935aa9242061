"""Goals end sequences, and `ldmail report` measures the mailed group against the holdout:
goal exits through the real CLI, the textbook statistics on a hand-built ledger, and the
self-contained HTML report, rendered by headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from ldmail.project.schedule import in_holdout

from .browser import chromium_command, colours
from .conftest import REPO, Cli

SCAFFOLD_PEOPLE = ["ann.devries@example.org", "bob.smith@example.org",
                   "chloe.martin@example.org", "dirk.jansen@example.org",
                   "emma.bakker@example.org", "fatima.elamrani@example.org",
                   "george.brown@example.org", "hanna.visser@example.org"]
DAY_1, DAY_4 = "2026-12-01T10:00+01:00", "2026-12-04T10:00+01:00"  # Tuesday, Friday


def rows(project: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(project / ".ldmail" / "ledger.db")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def outbox(project: Path) -> dict[str, set[str]]:
    """Step id -> the addresses it went to, read from the .eml files' headers."""
    sent: dict[str, set[str]] = {}
    folder = project / ".ldmail" / "outbox"
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(message, EmailMessage)
        to = message["To"].addresses
        assert len(to) == 1
        sent.setdefault(str(message["X-Ldmail-Step"]), set()).add(to[0].addr_spec.lower())
    return sent


def import_events(cli: Cli, project: Path, lines: list[str]) -> str:
    path = project / "goal-events.csv"
    path.write_text("\n".join(["E-mail;Event;Course;Timestamp", *lines]) + "\n",
                    encoding="utf-8")
    result = cli("events", "import", path, "--project", project)
    assert result.exit_code == 0, result.output
    return result.stdout


def send(cli: Cli, project: Path, now: str, *extra: str) -> None:
    result = cli("send", "--project", project, "--now", now, *extra)
    assert result.exit_code == 0, result.output


# -- time travel --------------------------------------------------------------------------------

def test_report_now_counts_only_what_had_happened_by_then(project: Path, cli: Cli) -> None:
    """Sends and exits after --now are not counted: the second step sent on day 4 is not
    in a report of day 2, nor are the enrolments that ended with it."""
    send(cli, project, DAY_1)
    send(cli, project, DAY_4)

    def figures(now: str) -> dict[str, Any]:
        result = cli("report", "-c", "welcome", "--project", project, "--now", now,
                     "--format", "json")
        assert result.exit_code == 0, result.output
        campaign: dict[str, Any] = json.loads(result.stdout)["campaigns"][0]
        return campaign

    before, after = figures("2026-12-02T12:00+01:00"), figures("2026-12-05T12:00+01:00")
    sent_before = {step["step"]: step["sent"] for step in before["steps"]}
    sent_after = {step["step"]: step["sent"] for step in after["steps"]}
    assert sent_before["hello"] == sent_after["hello"] == after["treatment"] > 0
    assert sent_before["first-course"] == 0 and sent_after["first-course"] == after["treatment"]
    assert before["exits"] == {} and after["exits"] == {"all steps done": after["treatment"]}
    assert sum(n for _, n in [(d["day"], d["sent"]) for d in before["sends_by_day"]]) == \
        sent_before["hello"]


# -- goals end the sequence -------------------------------------------------------------------

def test_reaching_the_goal_stops_the_remaining_steps(project: Path, cli: Cli) -> None:
    send(cli, project, DAY_1)
    treatment = sorted(e for (e,) in rows(project, "SELECT email FROM enrolments WHERE "
                                                   "campaign = 'welcome' AND grp = 'treatment'"))
    holdout = set(SCAFFOLD_PEOPLE) - set(treatment)
    assert len(treatment) >= 3
    assert outbox(project) == {"hello": set(treatment)}
    converter = treatment[1]
    out = import_events(cli, project, [f"{converter};registered;course:excel;02-12-2026 14:30"])
    assert "1 event(s) added" in out

    send(cli, project, DAY_4)
    sent = outbox(project)
    assert sent["hello"] == set(treatment)
    assert sent["first-course"] == set(treatment) - {converter}
    assert not holdout & (sent["hello"] | sent["first-course"])
    assert rows(project, "SELECT step, state FROM messages WHERE email = ?", converter) == [
        ("hello", "sent")]
    assert rows(project, "SELECT state, exit_reason FROM enrolments WHERE email = ?",
                converter) == [("converted", "goal reached")]
    others = rows(project, "SELECT DISTINCT state FROM enrolments WHERE grp = 'treatment' "
                           "AND email != ?", converter)
    assert others == [("completed",)]  # both steps done

    # The report counts the conversion, and how long it took (1.2 days after enrolment).
    report = json.loads(cli("report", "--project", project, "--now", DAY_4,
                            "--format", "json").stdout)
    welcome = report["campaigns"][0]
    assert welcome["exits"] == {"goal reached": 1, "all steps done": len(treatment) - 1}
    assert welcome["conversion"]["treatment_converted"] == 1
    assert welcome["conversion"]["median_days_to_goal_treatment"] == 1.2


def test_goal_reached_before_enrolment_means_never_mailed(project: Path, cli: Cli) -> None:
    target = next(e for e in SCAFFOLD_PEOPLE if not in_holdout("welcome", e, 0.10))
    import_events(cli, project, [f"{target.upper()};registered;course:excel;20-11-2026 09:00"])
    send(cli, project, DAY_1)
    send(cli, project, DAY_4)
    sent = outbox(project)
    assert sent["hello"] and target not in sent["hello"] | sent["first-course"]
    assert rows(project, "SELECT grp, state, exit_reason FROM enrolments WHERE email = ?",
                target) == [("treatment", "converted", "goal reached before enrolment")]
    assert rows(project, "SELECT * FROM messages WHERE email = ?", target) == []


def test_a_goal_of_another_course_does_not_end_the_sequence(project: Path, cli: Cli) -> None:
    campaign = project / "campaigns" / "welcome.yaml"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(text.replace("goal: {event: registered}",
                                     'goal: {event: registered, object: "course:sales-*"}'),
                        encoding="utf-8")
    target = next(e for e in SCAFFOLD_PEOPLE if not in_holdout("welcome", e, 0.10))
    import_events(cli, project, [f"{target};registered;course:excel;20-11-2026 09:00",
                                 f"{target};completed;course:sales-advisor;21-11-2026 09:00"])
    send(cli, project, DAY_1)
    assert target in outbox(project)["hello"]


def test_an_event_after_now_does_not_end_the_sequence_yet(project: Path, cli: Cli) -> None:
    target = next(e for e in SCAFFOLD_PEOPLE if not in_holdout("welcome", e, 0.10))
    import_events(cli, project, [f"{target};registered;course:excel;10-12-2026 09:00"])
    send(cli, project, DAY_1)
    assert target in outbox(project).get("hello", set())


# -- the statistics, on a ledger built by hand ------------------------------------------------

TREATMENT_N, TREATMENT_K, HOLDOUT_N, HOLDOUT_K = 200, 40, 50, 5
REPORT_NOW = "2026-12-20T12:00+01:00"


# 40/200 against 5/50, worked by hand. Wilson intervals (z = 1.96): 40/200 -> 0.15045 to
# 0.26086, 5/50 -> 0.04348 to 0.21360. Newcombe: 0.10 - sqrt(0.04955^2 + 0.11360^2) = -0.02394
# and 0.10 + sqrt(0.06086^2 + 0.05652^2) = 0.18306.
# Fisher: the sum of the hypergeometric probabilities no larger than the observed table's.
TEXTBOOK = {"uplift_pp": 10.0, "ci_low_pp": -2.394, "ci_high_pp": 18.306, "p_value": 0.1478}


@pytest.fixture
def stats_project(project: Path, cli: Cli) -> Path:
    """250 people: 200 mailed of whom 40 registered, 50 in the holdout of whom 5 registered."""
    departments = ["Sales", "IT", "HR", "Finance", "Support"]
    people = ["Email;First name;Last name;Language;Department;Start date;Certification"]
    people += [f"p{i:03d}@example.org;P{i};Test;EN;{departments[i % 5]};01-01-2015;"
               for i in range(TREATMENT_N + HOLDOUT_N)]
    (project / "people.csv").write_text("\n".join(people) + "\n", encoding="utf-8")
    # Saturday: everyone is enrolled, nothing is sent (outside the send window).
    send(cli, project, "2026-12-05T10:00+01:00")
    db = sqlite3.connect(project / ".ldmail" / "ledger.db")
    with db:
        assert db.execute("SELECT COUNT(*) FROM enrolments").fetchone() == (250,)
        db.execute("UPDATE enrolments SET grp = CASE WHEN email < 'p200' THEN 'treatment' "
                   "ELSE 'holdout' END")
    db.close()
    registered = [f"p{i:03d}" for i in range(TREATMENT_K)] + \
        [f"p{i:03d}" for i in range(TREATMENT_N, TREATMENT_N + HOLDOUT_K)]
    lines = [f"{p}@example.org;registered;course:excel;10-12-2026 11:00" for p in registered]
    lines += [f"{registered[0]}@example.org;registered;course:gdpr;11-12-2026 11:00",  # again
              "p150@example.org;completed;course:excel;10-12-2026 11:00",  # not the goal
              "p151@example.org;registered;course:excel;03-01-2027 11:00"]  # after --now
    assert "48 event(s) added" in import_events(cli, project, lines)
    return project


def test_report_csv_json_and_table_agree_with_the_textbook(stats_project: Path,
                                                           cli: Cli) -> None:
    base = ("report", "-c", "welcome", "--project", stats_project, "--now", REPORT_NOW)

    result = cli(*base, "--format", "csv", "--plain")
    assert result.exit_code == 0, result.output
    assert not result.stdout.startswith("\ufeff")
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    overall = next(r for r in records if r["record"] == "conversion" and r["segment"] == "all")
    assert (int(overall["treatment_n"]), int(overall["treatment_converted"]),
            int(overall["holdout_n"]), int(overall["holdout_converted"])) == (200, 40, 50, 5)
    assert (overall["uplift_pp"], overall["ci_low_pp"], overall["ci_high_pp"],
            overall["p_value"], overall["treatment_rate"]) == (
        "10.0", "-2.4", "18.3", "0.1478", "0.200")
    assert overall["outcome"] == "unclear"
    assert overall["verdict"].startswith("no clear effect yet (p = 0.148)")
    personas = [r for r in records if r["record"] == "conversion" and r["segment"] != "all"]
    assert sum(int(r["treatment_converted"]) for r in personas) == 40
    assert sum(int(r["holdout_n"]) for r in personas) == 50

    result = cli(*base, "--format", "json")
    assert result.exit_code == 0, result.output
    conversion = json.loads(result.stdout)["campaigns"][0]["conversion"]
    assert conversion["treatment_rate"] == pytest.approx(0.2)
    assert conversion["holdout_rate"] == pytest.approx(0.1)
    for key, expected in TEXTBOOK.items():
        assert conversion[key] == pytest.approx(expected, abs=5e-4), key

    result = cli(*base)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("│ all "))
    cells = [c.strip() for c in line.strip("│").split("│")]
    assert cells[:6] == ["all", "40/200 (20.0%)", "5/50 (10.0%)", "+10.0 pp",
                         "\u22122.4 to +18.3 pp", "0.148"]
    assert "250 enrolled: 200 mailed, 50 holdout" in result.stdout


def test_dutch_report_and_a_csv_that_dutch_excel_opens_in_columns(stats_project: Path,
                                                                 cli: Cli) -> None:
    base = ("report", "-c", "welcome", "--project", stats_project, "--now", REPORT_NOW,
            "--lang", "nl")
    result = cli(*base)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("│ iedereen "))
    cells = [c.strip() for c in line.strip("│").split("│")]
    assert cells[:6] == ["iedereen", "40/200 (20,0%)", "5/50 (10,0%)", "+10,0 %-punt",
                         "\u22122,4 tot +18,3 %-punt", "0,148"]
    result = cli(*base, "--format", "json")
    conversion = json.loads(result.stdout)["campaigns"][0]["conversion"]
    assert conversion["verdict"] == ("nog geen duidelijk effect (p = 0,148); blijf meten of "
                                     "vergroot de doelgroep")

    out = stats_project / "rapport.csv"
    result = cli(*base, "--out", out)
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the byte order mark: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    header = rows[0]
    assert header[:5] == ["campaign", "record", "step", "sent", "bounced"] and len(header) == 39
    assert all(len(row) == 39 for row in rows)  # every row splits into the same columns
    overall = next(dict(zip(header, row, strict=True)) for row in rows[1:]
                   if row[1] == "conversion" and row[header.index("segment")] == "all")
    assert (overall["uplift_pp"], overall["ci_low_pp"], overall["p_value"],
            overall["treatment_rate"]) == ("10,0", "-2,4", "0,1478", "0,200")


def test_shipped_example_events_show_the_campaigns_working(example: Path, cli: Cli) -> None:
    """The example's synthetic LMS and LRS exports tell a believable story in the report."""
    send(cli, example, "2026-12-05T10:00+01:00")  # a Saturday: enrols everyone, sends nothing
    for name in ("lms-export.csv", "xapi-statements.json"):
        result = cli("events", "import", REPO / "events" / name, "--project", example)
        assert result.exit_code == 0 and " 0 skipped" in result.stdout, result.output
    result = cli("report", "--project", example, "--now", "2027-01-26", "--format", "json")
    assert result.exit_code == 0, result.output
    conversion = {c["campaign"]: c["conversion"] for c in json.loads(result.stdout)["campaigns"]}
    launch, sales = conversion["platform-launch"], conversion["sales-advisor"]
    # Any course: about 45% of the mailed group against about 31% of the holdout.
    assert 0.40 <= launch["treatment_rate"] <= 0.50 and 0.25 <= launch["holdout_rate"] <= 0.40
    assert launch["uplift_pp"] > 10
    # Sales Advisor: about a third of the mailed group against a tenth of its 20% holdout, large
    # enough a difference and a group for a verdict.
    assert 0.28 <= sales["treatment_rate"] <= 0.36 and 0.06 <= sales["holdout_rate"] <= 0.12
    assert sales["uplift_pp"] > 20 and sales["p_value"] < 0.05
    assert sales["outcome"] == "raised"
    measured = {name: c for name, c in conversion.items() if c is not None}
    assert set(conversion) - set(measured) == {"course-completed"}  # no goal: nothing to measure
    assert all(c["holdout_n"] == 0 or c["treatment_rate"] >= c["holdout_rate"]
               for c in measured.values())


# -- the HTML report --------------------------------------------------------------------------

CHART_LABELS = ("messages per step", "conversion by persona", "uplift against the holdout",
                "messages sent per day")


@pytest.fixture
def html_report(stats_project: Path, cli: Cli) -> Path:
    # Two weekdays with a few sends each, so the sends-over-time chart has bars.
    send(cli, stats_project, "2026-12-07T10:00+01:00", "--limit", "12")
    send(cli, stats_project, "2026-12-09T10:00+01:00", "--limit", "7")
    out = stats_project / "report.html"
    result = cli("report", "--project", stats_project, "--now", REPORT_NOW, "--format", "html",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert f"Report written to {out}" in result.stdout
    return out


def test_html_report_is_self_contained(html_report: Path) -> None:
    html = html_report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    lowered = html.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import",
                   "url(", "src=", "href=", "http://", "https://"):
        assert needle not in lowered, needle
    assert "default-src 'none'" in html  # and the browser is told to load nothing
    assert lowered.count("<svg") == 4
    for label in CHART_LABELS:
        assert f"welcome to the learning platform: {label}" in lowered
    assert "+10.0 pp" in html and "0.148" in html and "40/200 (20.0%)" in html
    assert "No clear effect yet (p = 0.148)" in html


def test_html_report_escapes_every_text(project: Path, cli: Cli) -> None:
    campaign = project / "campaigns" / "welcome.yaml"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(text.replace("title: Welcome to the learning platform",
                                     "title: 'Tips <script>alert(\"x\")</script> & <b>tricks</b>'"),
                        encoding="utf-8")
    send(cli, project, DAY_1)
    result = cli("report", "--project", project, "--now", DAY_4, "--format", "html")
    assert result.exit_code == 0, result.output
    html = result.stdout
    assert "<script" not in html and "<b>tricks" not in html
    assert "Tips &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;tricks" in html


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(html_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    command = chromium_command(tmp_path)
    url = html_report.resolve().as_uri()
    rendered = subprocess.run([*command, f"--screenshot={shot}", "--window-size=1200,2400", url],
                              capture_output=True, text=True, timeout=60, check=False)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    # Console messages (a script error, a blocked load under the page's policy) are logged as
    # CONSOLE lines: the page has no script and loads nothing, so there must be none.
    assert [line for line in rendered.stderr.splitlines() if "CONSOLE" in line] == []
    assert shot.is_file()
    counts = colours(shot)
    assert len(counts) > 100  # text anti-aliasing, panels, four charts: not a blank page
    background = max(counts.values())
    assert background < 0.9 * sum(counts.values())
    # Each chart colour is on screen: treatment and holdout bars, the sent bars.
    for name, rgb in (("mailed", (0x1D, 0x4E, 0xD8)), ("holdout", (0x9C, 0xA3, 0xAF)),
                      ("sent", (0x0F, 0x76, 0x6E))):
        assert counts.get(bytes(rgb), 0) > 200, name

    dom = subprocess.run([*command, "--dump-dom", url], capture_output=True, text=True,
                         timeout=60, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 4
    assert "campaign report</h1>" in dom.stdout
