"""ldmail.measurement.survey promises to record a Forms export's answers to a campaign's fit
question: Microsoft Forms (`;`, BOM, an ID per response) or Google Forms (`,`, question texts
with commas, Windows-1252); each answer once; bad rows (anonymous, unknown, empty, an
unreadable time) skipped and named by row while the good ones are recorded; a missing column
stops the import in one line that names the setting and its line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ldmail.errors import LdmailError
from ldmail.ledger import FORGOTTEN, Ledger
from ldmail.measurement.survey import (
    answer_key,
    did_not_fit,
    import_survey,
    survey_campaign,
)
from ldmail.project.config import Project, load_project
from ldmail.project.models import Survey

NOW = datetime(2026, 12, 10, 10, tzinfo=ZoneInfo("Europe/Amsterdam"))
UNTIL = "2030-01-01T00:00:00Z"
QUESTION = "Paste de training bij jou, en waarom?"
SURVEY = (f'survey:\n  email_column: E-mailadres\n  fit_column: "{QUESTION}"\n'
          "  did_not_fit: [Nee, Helemaal niet]\n  time_column: Voltooiingstijd\n")


def add_survey(scaffold: Path, block: str = SURVEY) -> Project:
    welcome = scaffold / "campaigns" / "welcome.yaml"
    welcome.write_text(welcome.read_text(encoding="utf-8") + block, encoding="utf-8")
    return load_project(scaffold)


@pytest.fixture
def surveyed(scaffold: Path) -> Project:
    return add_survey(scaffold)


def forms_export(path: Path, rows: list[str]) -> Path:
    """A Dutch Microsoft Forms export as Excel saves it: BOM, `;`, CR-LF."""
    lines = [f'ID;Begintijd;Voltooiingstijd;E-mailadres;Naam;"{QUESTION}"', *rows]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([*lines, ""]).encode())
    return path


def stored(ledger: Ledger) -> list[tuple[str, str, str]]:
    return [(a.email, a.answer, a.submitted_at)
            for a in ledger.survey_answers("welcome", UNTIL)]


def test_a_forms_export_records_good_answers_and_names_each_bad_row(
        surveyed: Project, tmp_path: Path) -> None:
    path = forms_export(tmp_path / "forms.csv", [
        "1;1-12-2026 9:00:00;1-12-2026 9:05:00;Ann.DeVries@example.org;Ann;  helemaal   NIET",
        "2;1-12-2026 9:00:00;1-12-2026 9:06:00;anonymous;;Ja",
        "3;1-12-2026 9:00:00;1-12-2026 9:07:00;stranger@example.org;;Ja",
        "4;1-12-2026 9:00:00;1-12-2026 9:08:00;bob.smith@example.org;;",
        "5;1-12-2026 9:00:00;gisteren;chloe.martin@example.org;;Ja",
        "6;1-12-2026 9:00:00;1-12-2026 9:09:00;;;Ja",
        "7;1-12-2026 9:00:00;1-12-2026 9:10:00;dirk.jansen@example.org;;Ja"])
    with Ledger.of(surveyed) as ledger:
        result = import_survey(ledger, surveyed, "welcome", path, NOW)
        assert (result.added, result.already_known, result.empty) == (2, 0, False)
        assert [(s.position, s.reason.split(";")[0].split(" (")[0]) for s in result.skipped] == [
            ("row 3", "the answer is anonymous"),
            ("row 4", "stranger@example.org is not in the people export or the ledger"),
            ("row 5", f"no answer in column '{QUESTION}'"),
            ("row 6", "unreadable timestamp 'gisteren' in column 'Voltooiingstijd'"),
            ("row 7", "no e-mail address in column 'E-mailadres'")]
        # Spaces collapsed, the time read in the send window's zone (09:05 CET is 08:05 UTC).
        assert stored(ledger) == [
            ("ann.devries@example.org", "helemaal NIET", "2026-12-01T08:05:00Z"),
            ("dirk.jansen@example.org", "Ja", "2026-12-01T08:10:00Z")]
        again = import_survey(ledger, surveyed, "welcome", path, NOW)
        assert (again.added, again.already_known) == (0, 2)


def test_a_google_forms_export_with_commas_and_a_no_break_space_in_the_question(
        scaffold: Path, tmp_path: Path) -> None:
    project = add_survey(scaffold, 'survey:\n  email_column: Email address\n'
                                   '  fit_column: "Did it fit you, honestly?"\n'
                                   '  did_not_fit: ["No"]\n')
    path = tmp_path / "google.csv"
    # The question's header as Forms writes it, with a no-break space.
    path.write_bytes('Timestamp,Email address,"Did it fit you,\u00a0honestly?",Remarks\r\n'
                     '2026/12/01 9:05:00,chloe.martin@example.org,"No","Trop long, désolé"\r\n'
                     .encode("cp1252"))
    with Ledger.of(project) as ledger:
        result = import_survey(ledger, project, "welcome", path, NOW)
        assert (result.added, result.skipped) == (1, [])
        # Without a time column, an answer counts from when it was imported.
        assert stored(ledger) == [("chloe.martin@example.org", "No", "2026-12-10T09:00:00Z")]


def test_a_missing_column_names_the_setting_and_its_line(surveyed: Project,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "forms.csv"
    path.write_text("Timestamp,Email address,Other question\r\n", encoding="utf-8")
    with Ledger.of(surveyed) as ledger, pytest.raises(LdmailError) as raised:
        import_survey(ledger, surveyed, "welcome", path, NOW)
    message = str(raised.value)
    assert message.startswith(f"{path}: no column 'E-mailadres' (survey.email_column in "
                              "campaigns/welcome.yaml:")
    assert message.endswith("its columns are: Timestamp, Email address, Other question")


def test_a_forgotten_persons_answer_is_not_recorded(surveyed: Project, tmp_path: Path) -> None:
    path = forms_export(tmp_path / "forms.csv",
                        ["1;;1-12-2026 9:05:00;ann.devries@example.org;;Ja"])
    with Ledger.of(surveyed) as ledger:
        ledger.suppress(FORGOTTEN + ledger.address_hash("ann.devries@example.org"),
                        "forgotten on request", "forget", "2026-12-01T00:00:00Z")
        result = import_survey(ledger, surveyed, "welcome", path, NOW)
        assert result.empty
        assert [s.reason for s in result.skipped] == [
            "this person was forgotten on request; their answers are not recorded"]


def test_the_campaign_is_the_named_one_or_the_only_one_with_a_survey(
        scaffold: Path) -> None:
    without = load_project(scaffold)
    with pytest.raises(LdmailError, match="no campaign has a survey: block"):
        survey_campaign(without, None)
    with pytest.raises(LdmailError, match="campaign 'welcome' has no survey: block; add one"):
        survey_campaign(without, "welcome")
    project = add_survey(scaffold)
    assert survey_campaign(project, None) == survey_campaign(project, "welcome") == "welcome"
    copy = scaffold / "campaigns" / "welcome-again.yaml"
    copy.write_text((scaffold / "campaigns" / "welcome.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    with pytest.raises(LdmailError, match=r"several campaigns have a survey: block \(welcome, "
                                          r"welcome-again\); name the one"):
        survey_campaign(load_project(scaffold), None)


def test_did_not_fit_answers_match_without_regard_to_case_or_spaces() -> None:
    survey = Survey(fit_column=QUESTION, did_not_fit=["Nee", "Helemaal niet"])
    assert did_not_fit(survey, "  helemaal\u00a0 NIET ")
    assert not did_not_fit(survey, "Ja")
    assert answer_key(" Een  Beetje ") == answer_key("een beetje")
