"""ldmail.project.config: a campaign repository is loaded into typed models, and every problem
in it (syntax, unknown keys, wrong values, names one file uses from another, paths that leave
the project) is collected as one line, `file:line: what to do`, sorted by file, and raised
together as one ConfigError; without `strict` the project loads with its problems listed.
Also: finding the project from a folder below it, its time zone before a full load, paths and
business calendars from its settings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ldmail.errors import ConfigError, OutsideProject, ProjectNotFound
from ldmail.project.business_days import OPEN, BusinessCalendar, Region
from ldmail.project.config import (
    LEDGER_SETTING,
    Project,
    find_project,
    is_project,
    load_project,
    project_timezone,
)
from ldmail.project.models import DEFAULT_TIMEZONE

WELCOME = "campaigns/welcome.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def refusal(root: Path) -> list[str]:
    """The lines a user sees when the project does not load."""
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    lines = str(caught.value).splitlines()
    assert lines == [str(problem) for problem in caught.value.problems]
    return lines


def test_the_scaffold_loads_without_problems(loaded: Project) -> None:
    assert list(loaded.campaigns) == ["welcome"]
    assert loaded.problems == []
    assert loaded.campaign("welcome").title == "Welcome to the learning platform"
    assert loaded.templates_dir == loaded.root / "templates"
    assert loaded.root.is_absolute()


def test_a_campaign_without_its_own_zone_sends_in_the_projects(scaffold: Path) -> None:
    edit(scaffold / "ldmail.yaml", "timezone: Europe/Amsterdam", "timezone: Europe/London")
    assert load_project(scaffold).campaign("welcome").send_window.timezone == \
        ZoneInfo("Europe/London")
    edit(scaffold / WELCOME, 'hours: "09:00-17:00"}',
         'hours: "09:00-17:00", timezone: America/New_York}')
    assert load_project(scaffold).campaign("welcome").send_window.timezone == \
        ZoneInfo("America/New_York")


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("ldmail.yaml", "organisation: Example Organisation", "organisation: 12",
     "ldmail.yaml:3: organisation: expected text, got the number 12; put it in quotes"),
    ("ldmail.yaml", "languages: [en, nl]", "languages: en",
     "ldmail.yaml:5: languages: expected a list (one '- item' per line, or [a, b]), got 'en'"),
    ("ldmail.yaml", "timezone: Europe/Amsterdam", "timezone: Europe/Amsterdan",
     "ldmail.yaml:15: timezone: 'Europe/Amsterdan' is not an IANA time zone (did you mean "
     "'Europe/Amsterdam'?); write e.g. Europe/Amsterdam"),
    (WELCOME, "starts: 2026-01-01", "starts: soon",
     "campaigns/welcome.yaml:7: starts: expected a date such as 2026-12-01, got 'soon'"),
    (WELCOME, "holdout: 10%", "holdout: ten",
     "campaigns/welcome.yaml:8: holdout: 'ten' is not a percentage; write it with a % sign, "
     "from 0% to 99%, e.g. 10%"),
    (WELCOME, "phase: activate", "phase: launch",
     "campaigns/welcome.yaml:4: phase: 'launch' is not one of 'inform', 'activate' or "
     "'retain'"),
    (WELCOME, "title: Welcome to the learning platform\n", "",
     "campaigns/welcome.yaml:1: missing required key 'title'; add it"),
])
def test_a_wrong_value_is_named_with_its_file_line_and_what_to_write(
        scaffold: Path, file: str, old: str, new: str, expected: str) -> None:
    edit(scaffold / file, old, new)
    assert refusal(scaffold) == [expected]


def test_a_typo_is_reported_once_not_also_as_the_missing_key(scaffold: Path) -> None:
    edit(scaffold / WELCOME, "title:", "titel:")
    assert refusal(scaffold) == [
        "campaigns/welcome.yaml:3: unknown key 'titel' (did you mean 'title'?); allowed here: "
        "title, phase, description, hypothesis, audience, starts, ends, anchor, trigger, "
        "holdout, goal, fallback_language, sender, reply_to, send_window, min_gap, steps, "
        "survey, holidays"]


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    (WELCOME, "newcomer,", "newcomers,",
     "campaigns/welcome.yaml:6: unknown persona 'newcomers'; did you mean 'newcomer'? personas "
     "in audiences.yaml: compelled, newcomer, skill-builder, broad-developer"),
    (WELCOME, "starts: 2026-01-01", "starts: 2026-01-01\nanchor: department",
     "campaigns/welcome.yaml:8: anchor 'department' is not a date attribute; list it under "
     "people.dates in audiences.yaml (date attributes: start_date)"),
    (WELCOME, "  personas: [", "  where: \"departement == 'Sales'\"\n  personas: [",
     "campaigns/welcome.yaml:6: expression uses unknown attribute 'departement'; did you mean "
     "'department'? attributes: certification, department, email, first_name, language, "
     "last_name, start_date, tenure_days, today (map more columns under people.columns)"),
    (WELCOME, "template: welcome/first-course}", "template: welcome/first-course, "
     "when: \"reachd('registered', 'course:*')\"}",
     "campaigns/welcome.yaml:14: expression uses unknown helper or attribute 'reachd'; did you "
     "mean 'reached'? helpers: count, days_since, reached; attributes: certification, "
     "department, email, first_name, language, last_name, start_date, tenure_days, today (map "
     "more columns under people.columns)"),
    (WELCOME, "template: welcome/first-course}", "template: welcome/first-course, to: manager}",
     "campaigns/welcome.yaml:14: step 'first-course' goes to the manager, but people.columns "
     "in audiences.yaml maps no manager_email: add the export's column with each person's "
     "manager's address, e.g. manager_email: Manager e-mail"),
    (WELCOME, "<learning@example.org>", "<learning at example.org>",
     "campaigns/welcome.yaml:10: sender 'Learning Team <learning at example.org>': An email "
     "address must have an @-sign; write \"Name <address@example.org>\""),
    ("audiences.yaml", 'match: "tenure_days < 120"', 'match: "tenure < 120"',
     "audiences.yaml:23: expression uses unknown attribute 'tenure'; did you mean "
     "'tenure_days'? attributes: certification, department, email, first_name, language, "
     "last_name, start_date, tenure_days, today (map more columns under people.columns)"),
])
def test_names_one_file_uses_from_another_are_checked(scaffold: Path, file: str, old: str,
                                                      new: str, expected: str) -> None:
    edit(scaffold / file, old, new)
    assert refusal(scaffold) == [expected]


def test_a_manager_step_is_fine_once_the_manager_column_is_mapped(scaffold: Path) -> None:
    edit(scaffold / WELCOME, "template: welcome/first-course}",
         "template: welcome/first-course, cc_manager: true}")
    edit(scaffold / "audiences.yaml", "    email: Email\n",
         "    email: Email\n    manager_email: Manager\n")
    assert load_project(scaffold).campaign("welcome").steps[1].involves_manager


def test_each_files_own_problems_are_all_listed_in_one_error(scaffold: Path) -> None:
    edit(scaffold / WELCOME, "title:", "titel:")
    edit(scaffold / "ldmail.yaml", "organisation:", "organization:")
    edit(scaffold / "audiences.yaml", "  dates: [start_date]", "  date: [start_date]")
    lines = refusal(scaffold)
    assert sorted(line.split(":", 1)[0] for line in lines) == \
        ["audiences.yaml", WELCOME, "ldmail.yaml"]
    assert "ldmail.yaml:3: unknown key 'organization' (did you mean 'organisation'?); " \
        "allowed here: organisation," in str(lines)


def test_problems_across_files_come_sorted_by_file_and_line(scaffold: Path) -> None:
    edit(scaffold / WELCOME, "newcomer,", "newcomers,")
    edit(scaffold / WELCOME, "starts: 2026-01-01", "starts: 2026-01-01\nanchor: department")
    edit(scaffold / "audiences.yaml", 'match: "tenure_days < 120"', 'match: "tenure < 120"')
    assert [line.split(": ", 1)[0] for line in refusal(scaffold)] == [
        "audiences.yaml:23", "campaigns/welcome.yaml:6", "campaigns/welcome.yaml:8"]


def test_a_settings_problem_does_not_hide_an_unknown_persona(scaffold: Path) -> None:
    edit(scaffold / "ldmail.yaml", "organisation:", "organization:")
    edit(scaffold / WELCOME, "newcomer,", "newcomers,")
    assert len(refusal(scaffold)) == 2


def test_a_settings_problem_hides_no_check_that_does_not_need_the_settings(
        scaffold: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_DATA_DIRS", raising=False)
    edit(scaffold / "ldmail.yaml", "organisation:", "organization:")
    edit(scaffold / "ldmail.yaml", "unsubscribe:", "ledger: ../ledger.db\nunsubscribe:")
    edit(scaffold / WELCOME, "newcomer,", "newcomers,")
    edit(scaffold / "audiences.yaml", "source: people.csv", "source: ../people.csv")
    lines = refusal(scaffold)
    # Sorted by file and line; the settings' own paths are not checked (they did not load).
    assert [line.split(": ", 1)[0] for line in lines] == [
        "audiences.yaml:4", "campaigns/welcome.yaml:6", "ldmail.yaml:3"]
    assert "people.source: points to" in lines[0] and "unknown persona 'newcomers'" in lines[1]


def test_an_audiences_problem_skips_the_checks_that_need_the_audiences_and_only_those(
        scaffold: Path) -> None:
    edit(scaffold / "audiences.yaml", "  dates: [start_date]", "  date: [start_date]")
    edit(scaffold / WELCOME, "newcomer,", "newcomers,")  # not guessed at: personas unknown
    edit(scaffold / WELCOME, "<learning@example.org>", "<learning at example.org>")
    edit(scaffold / "ldmail.yaml", "organisation:", "organization:")
    assert [line.split(": ", 1)[0] for line in refusal(scaffold)] == [
        "audiences.yaml:13", "campaigns/welcome.yaml:10", "ldmail.yaml:3"]


def test_a_campaign_that_does_not_validate_still_has_its_personas_checked(
        scaffold: Path) -> None:
    edit(scaffold / WELCOME, "phase: activate", "phase: launch")
    edit(scaffold / WELCOME, "newcomer,", "newcomers,")
    assert refusal(scaffold) == [
        "campaigns/welcome.yaml:4: phase: 'launch' is not one of 'inform', 'activate' or "
        "'retain'",
        "campaigns/welcome.yaml:6: unknown persona 'newcomers'; did you mean 'newcomer'? "
        "personas in audiences.yaml: compelled, newcomer, skill-builder, broad-developer"]


def test_a_campaign_file_name_must_be_usable_as_its_id(scaffold: Path) -> None:
    shutil.copy(scaffold / WELCOME, scaffold / "campaigns" / "Welcome 2027.yaml")
    assert refusal(scaffold) == [
        "campaigns/Welcome 2027.yaml: the file name is the campaign id, which goes into mail "
        "headers and links: use lower-case letters, digits, '-' and '_' only, starting with a "
        "letter or digit (e.g. campaigns/welcome-2027.yaml)"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda root: (root / "audiences.yaml").unlink(),
     "audiences.yaml: missing; it defines where people come from and the personas"),
    (lambda root: (root / WELCOME).unlink(),
     "campaigns: no campaign files (campaigns/*.yaml) found"),
    (lambda root: (root / "ldmail.yaml").write_text("- en\n- nl\n", encoding="utf-8"),
     "ldmail.yaml:1: expected a mapping of keys to values"),
    (lambda root: edit(root / "ldmail.yaml", "languages: [en, nl]", "languages: [en, nl"),
     "ldmail.yaml:5: YAML syntax error: the '[' opened on this line is not closed (line 6 is "
     "reached first); add the ']'"),
])
def test_a_missing_or_unreadable_file_is_a_located_problem(
        scaffold: Path, change: Callable[[Path], object], expected: str) -> None:
    change(scaffold)
    assert refusal(scaffold) == [expected]


def test_without_strict_the_project_loads_with_its_problems(scaffold: Path) -> None:
    edit(scaffold / WELCOME, "starts: 2026-01-01", "starts: 2026-01-01\nanchor: department")
    project = load_project(scaffold, strict=False)
    assert [str(p) for p in project.problems] == [
        "campaigns/welcome.yaml:8: anchor 'department' is not a date attribute; list it under "
        "people.dates in audiences.yaml (date attributes: start_date)"]
    assert project.campaign("welcome").anchor == "department"


def test_a_folder_without_a_project_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFound) as caught:
        load_project(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path.resolve()}: no ldmail project here (no audiences.yaml, ldmail.yaml or "
        "campaigns/); run inside a campaign repo, pass --project DIR, or create one with "
        "'ldmail init DIR'")


def test_the_project_is_found_from_a_folder_below_it(scaffold: Path, tmp_path: Path) -> None:
    below = scaffold / "templates" / "en" / "welcome"
    assert is_project(scaffold) and not is_project(below)
    assert find_project(below) == scaffold.resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_project(elsewhere) is None


def test_the_time_zone_is_known_before_the_whole_project_loads(scaffold: Path) -> None:
    assert project_timezone(scaffold) == ZoneInfo("Europe/Amsterdam")
    edit(scaffold / "ldmail.yaml", "timezone: Europe/Amsterdam", "timezone: Asia/Tokyo")
    assert project_timezone(scaffold) == ZoneInfo("Asia/Tokyo")
    # A wrong or missing value is the full load's to report; until then, the default.
    edit(scaffold / "ldmail.yaml", "timezone: Asia/Tokyo", "timezone: Mars/Olympus")
    assert project_timezone(scaffold) == DEFAULT_TIMEZONE
    (scaffold / "ldmail.yaml").unlink()
    assert project_timezone(scaffold) == DEFAULT_TIMEZONE


def test_unknown_campaign_ids_suggest_the_closest(loaded: Project) -> None:
    with pytest.raises(ConfigError) as caught:
        loaded.campaign("welcom")
    assert str(caught.value) == ("campaigns: no campaign 'welcom'; did you mean 'welcome'? "
                                 "campaigns here: welcome")
    with pytest.raises(ConfigError, match="^campaigns: no campaign 'zzz'; campaigns here: "
                                          "welcome$"):
        loaded.campaign("zzz")


def test_paths_from_settings_stay_in_the_project(loaded: Project, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_DATA_DIRS", raising=False)
    assert loaded.path(".ldmail/ledger.db", LEDGER_SETTING) == loaded.root / ".ldmail/ledger.db"
    outside = tmp_path / "shared" / "ledger.db"
    with pytest.raises(OutsideProject) as caught:
        loaded.path(str(outside), LEDGER_SETTING)
    assert str(caught.value).startswith(
        f"ledger in ldmail.yaml: points to {outside}, outside the project;")
    monkeypatch.setenv("LDMAIL_DATA_DIRS", str(tmp_path / "shared"))
    assert loaded.path(str(outside), LEDGER_SETTING) == outside


def test_a_setting_that_leaves_the_project_is_located(scaffold: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDMAIL_DATA_DIRS", raising=False)
    edit(scaffold / "audiences.yaml", "source: people.csv", "source: ../people.csv")
    outside = scaffold.resolve().parent / "people.csv"
    assert refusal(scaffold) == [
        f"audiences.yaml:4: people.source: points to {outside}, outside the project; a "
        "campaign repository may only use files inside it (for data that lives elsewhere the "
        "operator lists the folder in LDMAIL_DATA_DIRS)"]


def test_a_symbolic_link_out_of_the_templates_is_refused(scaffold: Path) -> None:
    outside = scaffold.parent / "secret.md"
    outside.write_text("secret", encoding="utf-8")
    os.symlink(outside, scaffold / "templates" / "en" / "welcome" / "evil.md")
    assert refusal(scaffold) == [
        f"templates/en/welcome/evil.md: is a symbolic link to {outside}, outside templates/; "
        "a campaign repository may only use its own files: replace the link with the file "
        "itself"]


def test_a_campaigns_own_holidays_take_the_place_of_the_projects(scaffold: Path) -> None:
    edit(scaffold / "ldmail.yaml", "timezone: Europe/Amsterdam",
         "timezone: Europe/Amsterdam\nholidays: NL")
    shutil.copy(scaffold / WELCOME, scaffold / "campaigns" / "always.yaml")
    edit(scaffold / "campaigns" / "always.yaml", "holdout: 10%", "holdout: 10%\nholidays: []")
    project = load_project(scaffold)
    assert project.business_calendar("welcome") == BusinessCalendar((Region("NL"),))
    assert project.business_calendar("always") == OPEN
    assert project.business_calendar("welcome") is project.business_calendar("welcome")
