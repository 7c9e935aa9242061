"""`ldmail survey import` and the report's "did the training fit me" share per persona."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ldmail.measurement.report import FitShare

from .conftest import REPO, Cli
from .test_validate import edit

FIT = "Hoe goed passen de trainingen bij je werk? / How well do the courses fit your work?"
HEADER = ["ID", "Start time", "Completion time", "Email", "Name",
          "Hoe makkelijk werkt het platform? / How easy is the platform to use?", FIT,
          "Wat moeten we toevoegen of veranderen? / What should we add or change?"]
GOOD = "Past grotendeels / Mostly fits"
BAD = "Past niet bij mij / Does not fit me"
SEND = "2026-12-01T10:00+01:00"


def forms_export(path: Path, rows: list[list[str]], *, header: list[str] = HEADER,
                 delimiter: str = ";", encoding: str = "utf-8-sig") -> Path:
    """A Forms export as Excel saves it: `;`, a BOM, CRLF, quotes only where needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def answer(number: int, email: str, fit: str, when: str = "3-2-2027 14:05:10") -> list[str]:
    return [str(number), when, when, email, "", "4", fit, ""]


def ledger_rows(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{project / '.ldmail' / 'ledger.db'}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def people(example: Path) -> list[dict[str, str]]:
    text = (example / "people.csv").read_text(encoding="utf-8-sig")
    return [dict(row, **{"E-mail": row["E-mail"].lower()})
            for row in csv.DictReader(io.StringIO(text), delimiter=";")]


def enrolled(example: Path, cli: Cli) -> dict[str, list[str]]:
    """Send once so learning-habit enrols its audience; its addresses per persona."""
    result = cli("send", "--project", example, "--now", SEND)
    assert result.exit_code == 0, result.output
    found: dict[str, list[str]] = {}
    for email, persona in ledger_rows(
            example, "SELECT email, persona FROM enrolments WHERE campaign = 'learning-habit'"
            " ORDER BY email"):
        found.setdefault(persona, []).append(email)
    return found


def fit_report(cli: Cli, example: Path, now: str) -> dict[str, dict[str, Any]]:
    result = cli("report", "-c", "learning-habit", "--format", "json", "--project", example,
                 "--now", now)
    assert result.exit_code == 0, result.output
    (campaign,) = json.loads(result.stdout)["campaigns"]
    return {item["persona"]: item for item in campaign["fit"]}


def test_bad_rows_are_reported_by_row_and_good_ones_imported(
        example: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c, d, e = (p["E-mail"] for p in people(example)[:5])
    formula = '=HYPERLINK("https://evil.example";"klik")'
    forms_export(tmp_path / "survey.csv", [
        answer(1, a.upper(), GOOD),                                  # row 2
        answer(2, "", GOOD),                                         # row 3
        answer(3, "nobody@elsewhere.example", GOOD),                 # row 4
        answer(4, b, ""),                                            # row 5
        answer(5, "not-an-address", GOOD),                           # row 6
        answer(6, c, "  past NIET bij  mij / does not fit me ", "2027-02-04T09:30:00"),  # row 7
        answer(7, d, formula),                                       # row 8
        answer(8, "anonymous", GOOD),                                # row 9
        answer(9, e, GOOD, "yesterday"),                             # row 10
    ])
    monkeypatch.chdir(tmp_path)
    result = cli("survey", "import", "survey.csv", "--project", example)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("survey.csv row 3: no e-mail address in column 'Email'; the answer was "
                        "skipped")
    assert lines[1] == ("survey.csv row 4: nobody@elsewhere.example is not in the people export "
                        "or the ledger; the answer was skipped")
    assert lines[2] == f"survey.csv row 5: no answer in column '{FIT}'; the row was skipped"
    assert re.fullmatch(r"survey\.csv row 6: invalid e-mail address 'not-an-address'.* \(column "
                        r"'Email'\); the answer was skipped", lines[3]), lines[3]
    assert lines[4].startswith("survey.csv row 9: the answer is anonymous")
    assert lines[5] == ("survey.csv row 10: unreadable timestamp 'yesterday' in column "
                        "'Completion time' (write e.g. 31-01-2027 14:05:00 or "
                        "2027-01-31T14:05:00); the answer was skipped")
    assert lines[6:] == ["imported 3 answers (0 already known), 6 rows skipped"]
    # Addresses lower-cased, spaces collapsed, formulas kept as text, times without a zone
    # read in the campaign's time zone (Amsterdam) and stored in UTC.
    assert ledger_rows(example, "SELECT campaign, email, answer, submitted_at, source FROM "
                       "survey_answers ORDER BY id") == [
        ("learning-habit", a, GOOD, "2027-02-03T13:05:10Z", "survey.csv"),
        ("learning-habit", c, "past NIET bij mij / does not fit me", "2027-02-04T08:30:00Z",
         "survey.csv"),
        ("learning-habit", d, formula, "2027-02-03T13:05:10Z", "survey.csv"),
    ]
    # The dedupe identity is a keyed hash: no copy of the address outside `email`.
    keys = [key for (key,) in ledger_rows(example, "SELECT response FROM survey_answers")]
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys) and len(set(keys)) == 3
    again = cli("survey", "import", "survey.csv", "--project", example)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == "imported 0 answers (3 already known), 6 rows skipped"
    assert ledger_rows(example, "SELECT count(*) FROM survey_answers") == [(3,)]


def test_google_forms_export_with_commas_and_cp1252(example: Path, cli: Cli,
                                                    tmp_path: Path) -> None:
    """No ID column (the address, time and answer name a response), `,` between cells,
    question texts with commas and semicolons, saved by Excel in Windows-1252."""
    edit(example / "campaigns/learning-habit.yaml", "email_column: Email ",
         'email_column: "Email address" ')
    edit(example / "campaigns/learning-habit.yaml", "time_column: Completion time",
         "time_column: Timestamp")
    edit(example / "campaigns/learning-habit.yaml", f'fit_column: "{FIT}"',
         'fit_column: "Did the training fit you, honestly?"')
    a, b = (p["E-mail"] for p in people(example)[:2])
    header = ["Timestamp", "Email address", "Did the training fit you, honestly?",
              "Anything else; in your own words?"]
    path = forms_export(tmp_path / "google.csv", [
        ["03/02/2027 14:05:10", a, "Does not fit me", "Te veel theorie, te weinig praktijk"],
        ["03/02/2027 15:00:00", b, "Fits me well", "Café-achtige sessies, graag"],
    ], header=header, delimiter=",", encoding="cp1252")
    result = cli("survey", "import", path, "--project", example)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["imported 2 answers (0 already known), 0 rows skipped"]
    assert ledger_rows(example, "SELECT email, answer, submitted_at FROM survey_answers "
                       "ORDER BY id") == [(a, "Does not fit me", "2027-02-03T13:05:10Z"),
                                          (b, "Fits me well", "2027-02-03T14:00:00Z")]
    again = cli("survey", "import", path, "--project", example)
    assert again.stdout.splitlines() == ["imported 0 answers (2 already known), 0 rows skipped"]


def test_report_json_shows_fit_share_per_persona(example: Path, cli: Cli,
                                                 tmp_path: Path) -> None:
    personas = enrolled(example, cli)
    skill, compelled = personas["skill-builder"][:21], personas["compelled"][:4]
    board = next(p["E-mail"] for p in people(example) if p["Afdeling"] == "Board")
    rows = [answer(1, skill[0], BAD, "2-2-2027 10:00:00")]           # changes their mind later
    rows += [answer(2 + i, email, GOOD) for i, email in enumerate(skill[1:])]
    rows += [answer(30, compelled[0], BAD)]
    rows += [answer(31 + i, email, GOOD) for i, email in enumerate(compelled[1:])]
    rows += [answer(40, skill[0], GOOD, "6-2-2027 09:00:00")]
    rows += [answer(41, board, BAD)]  # in the export, not in the campaign: not counted
    path = forms_export(tmp_path / "survey.csv", rows)
    imported = cli("survey", "import", path, "--project", example)
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.splitlines() == ["imported 27 answers (0 already known), 0 rows skipped"]

    fit = fit_report(cli, example, "2027-02-05")
    assert list(fit) == ["all", "broad-developer", "compelled", "newcomer", "skill-builder"]
    # Skill builders: 1 of 21 (4.8%) is under the 5% bar; compelled: 1 of 4 is over it.
    assert fit["skill-builder"] == {
        "persona": "skill-builder", "answers": 21, "did_not_fit": 1, "share": 1 / 21,
        "target": 0.05, "under_target": True, "distribution": {GOOD: 20, BAD: 1}}
    assert (fit["compelled"]["answers"], fit["compelled"]["did_not_fit"],
            fit["compelled"]["share"], fit["compelled"]["under_target"]) == (4, 1, 0.25, False)
    assert (fit["all"]["answers"], fit["all"]["did_not_fit"], fit["all"]["under_target"]) == \
        (25, 2, False)
    assert fit["broad-developer"]["answers"] == 0
    assert fit["broad-developer"]["share"] is None
    assert fit["broad-developer"]["under_target"] is None

    # The table, the HTML and the CSV show the same shares against the bar.
    base = ("report", "-c", "learning-habit", "--project", example, "--now", "2027-02-05")
    table = cli(*base, "--lang", "en")
    compelled_line = next(line for line in table.stdout.splitlines()
                          if line.startswith("│ compelled ") and "bar" in line)
    assert [c.strip() for c in compelled_line.strip("│").split("│")][:5] == [
        "compelled", "4", "1", "25.0%", "over the bar"]
    html = cli(*base, "--format", "html", "--lang", "nl").stdout
    assert "Paste het aanbod?" in html and "<td>25,0%</td>" in html and "boven de grens" in html
    csv_rows = list(csv.DictReader(io.StringIO(cli(*base, "--format", "csv", "--plain").stdout)))
    skill_row = next(r for r in csv_rows
                     if r["record"] == "fit" and r["segment"] == "skill-builder")
    assert (skill_row["answers"], skill_row["did_not_fit"], skill_row["did_not_fit_share"],
            skill_row["under_target"]) == ("21", "1", "0.048", "True")

    # A week later the skill builder's second answer counts instead of the first.
    later = fit_report(cli, example, "2027-02-10")
    assert (later["skill-builder"]["answers"], later["skill-builder"]["did_not_fit"]) == (21, 0)
    assert (later["all"]["did_not_fit"], later["all"]["share"], later["all"]["under_target"]) \
        == (1, 1 / 25, True)

    # Before most answers were given, only that first one counts.
    early = fit_report(cli, example, "2027-02-02T12:00+01:00")
    assert (early["all"]["answers"], early["all"]["did_not_fit"]) == (1, 1)
    assert early["compelled"]["answers"] == 0 and early["compelled"]["under_target"] is None

    # Forgetting a respondent keeps the counts true: their answer stays, under a keyed hash.
    assert cli("forget", skill[3], "--project", example, "--now", "2027-02-09").exit_code == 0
    after = fit_report(cli, example, "2027-02-10")
    assert after["skill-builder"]["answers"] == 21
    assert after["all"] == later["all"]


def test_fit_share_must_stay_under_the_bar() -> None:
    assert FitShare("all", 20, 1, 0.05, {}).under_target is False  # 5% is not under 5%
    assert FitShare("all", 21, 1, 0.05, {}).under_target is True
    assert FitShare("all", 0, 0, 0.05, {}).share is None


def test_missing_column_stops_with_one_line(example: Path, cli: Cli, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    header = ["E-mail" if h == "Email" else h for h in HEADER]
    a = people(example)[0]["E-mail"]
    forms_export(tmp_path / "survey.csv", [answer(1, a, GOOD)], header=header)
    monkeypatch.chdir(tmp_path)
    result = cli("survey", "import", "survey.csv", "--project", example)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert re.fullmatch(
        r"error survey\.csv: no column 'Email' \(survey\.email_column in "
        r"campaigns/learning-habit\.yaml:\d+\); its columns are: ID, Start time, Completion "
        r"time, E-mail, Name, .*What should we add or change\?", line), line
    assert ledger_rows(example, "SELECT count(*) FROM survey_answers") == [(0,)]


def test_no_row_imported_exits_1(example: Path, cli: Cli, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    forms_export(tmp_path / "survey.csv", [answer(1, "", GOOD),
                                           answer(2, "stranger@elsewhere.example", BAD)])
    monkeypatch.chdir(tmp_path)
    result = cli("survey", "import", "survey.csv", "--project", example)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stdout.splitlines()[-1] == "imported 0 answers (0 already known), 2 rows skipped"
    assert result.stderr.strip() == ("error: no row of survey.csv could be imported (see the "
                                     "reasons above); fix the file and import it again")


def test_forget_erases_survey_answers(example: Path, cli: Cli, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = (p["E-mail"] for p in people(example)[:2])
    forms_export(tmp_path / "survey.csv", [answer(1, a, BAD), answer(2, b, GOOD)])
    monkeypatch.chdir(tmp_path)
    assert cli("survey", "import", "survey.csv", "--project", example).exit_code == 0
    forgotten = cli("forget", a, "--project", example)
    assert forgotten.exit_code == 0, forgotten.output
    rows = ledger_rows(example, "SELECT email, answer FROM survey_answers ORDER BY id")
    assert len(rows) == 2 and rows[1] == (b, GOOD)
    assert rows[0][0].startswith("forgotten:") and rows[0][1] == BAD
    ledger_files = list((example / ".ldmail").glob("ledger.db*"))
    assert not any(a.encode() in path.read_bytes() for path in ledger_files)
    # Importing the export again does not bring the forgotten person back.
    again = cli("survey", "import", "survey.csv", "--project", example)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines() == [
        "survey.csv row 2: this person was forgotten on request; their answers are not recorded",
        "imported 0 answers (1 already known), 1 row skipped"]
    assert ledger_rows(example, "SELECT count(*) FROM survey_answers WHERE email = ?",
                       (a,)) == [(0,)]


def test_campaign_choice(example: Path, cli: Cli, tmp_path: Path) -> None:
    a = people(example)[0]["E-mail"]
    path = forms_export(tmp_path / "survey.csv", [answer(1, a, GOOD)])
    launch = example / "campaigns/platform-launch.yaml"
    launch.write_text(launch.read_text(encoding="utf-8") + (
        f'survey: {{fit_column: "{FIT}", did_not_fit: ["{BAD}"]}}\n'), encoding="utf-8")
    ambiguous = cli("survey", "import", path, "--project", example)
    assert ambiguous.exit_code == 1
    assert "Traceback" not in ambiguous.output
    assert ambiguous.stderr.strip() == (
        "error several campaigns have a survey: block (learning-habit, platform-launch); name "
        "the one this export answers with -c CAMPAIGN")
    none = cli("survey", "import", path, "-c", "sales-advisor", "--project", example)
    assert none.exit_code == 1
    assert none.stderr.strip().startswith(
        "error campaign 'sales-advisor' has no survey: block (campaigns with one: "
        "learning-habit, platform-launch)")
    chosen = cli("survey", "import", path, "-c", "platform-launch", "--project", example)
    assert chosen.exit_code == 0, chosen.output
    assert ledger_rows(example, "SELECT campaign, email FROM survey_answers") == \
        [("platform-launch", a)]


def test_shipped_example_export(example: Path, cli: Cli,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """events/survey-answers.csv: 41 Microsoft Forms responses, three of them deliberately bad."""
    monkeypatch.chdir(REPO)
    result = cli("survey", "import", "events/survey-answers.csv", "--project", example)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "events/survey-answers.csv row 11: no e-mail address in column 'Email'; the answer was "
        "skipped",
        "events/survey-answers.csv row 22: m.kramer@hearthandhome.example is not in the people "
        "export or the ledger; the answer was skipped",
        f"events/survey-answers.csv row 35: no answer in column '{FIT}'; the row was skipped",
        "imported 38 answers (0 already known), 3 rows skipped",
    ]
    answers = ledger_rows(example, "SELECT email, answer FROM survey_answers")
    assert {email for email, _ in answers} <= {p["E-mail"] for p in people(example)}
    assert sum(text == BAD for _, text in answers) == 2


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('    - "Does not fit me"\n', "", None),  # still valid
    ("time_column: Completion time", "time_colum: Completion time",
     r"campaigns/learning-habit\.yaml:\d+: unknown key 'time_colum'"),
    ("target: 5%", "target: five", r"campaigns/learning-habit\.yaml:\d+: .*not a percentage"),
])
def test_validate_checks_the_survey_block(example: Path, cli: Cli, old: str, new: str,
                                          expected: str | None) -> None:
    edit(example / "campaigns/learning-habit.yaml", old, new)
    result = cli("validate", "--project", example, "--now", "2026-12-01")
    if expected is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert re.search(expected, result.output), result.output
