"""content.preview promises what a persona, or one person, will receive for each step: per
persona the export's first person in it (else a stand-in), or with sample_people stand-ins only
and no export read; for one person their own language, the A/B variant they get, why the
campaign would not mail them, and whether a step's condition holds for them; `write_html`
writes the HTML part to the preview folder under a name without an address."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from ldmail.content.preview import (
    PreviewItem,
    build_preview,
    invite_summary,
    variant_summary,
    write_html,
)
from ldmail.errors import LdmailError
from ldmail.project.config import PREVIEW_FOLDER, Project, load_project

TODAY = date(2026, 12, 1)


def edit_campaign(scaffold: Path, change: Callable[[dict[str, Any]], None]) -> Project:
    path = scaffold / "campaigns" / "welcome.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return load_project(scaffold)


def shown(items: list[PreviewItem]) -> list[tuple[str, str | None, str, str, bool]]:
    return [(item.step.id, item.persona, item.language, item.recipient, item.real_person)
            for item in items]


def test_each_persona_is_shown_with_the_first_person_of_the_export_in_it(
        loaded: Project) -> None:
    items = build_preview(loaded, "welcome", TODAY, step_id="hello")
    assert shown(items) == [
        ("hello", "compelled", "en", "bob.smith@example.org", True),
        ("hello", "newcomer", "en", "chloe.martin@example.org", True),
        ("hello", "skill-builder", "en", "george.brown@example.org", True),
        ("hello", "broad-developer", "en", "amelia.wright@example.org", False),  # a stand-in
    ]
    assert items[0].rendered.subject == "Bob, your learning platform is open"


def test_sample_people_need_no_export(scaffold: Path) -> None:
    (scaffold / "people.csv").unlink()
    items = build_preview(load_project(scaffold), "welcome", TODAY, persona_id="newcomer",
                          language="nl", sample_people=True)
    assert [(item.step.id, item.language, item.real_person) for item in items] == \
        [("hello", "nl", False), ("first-course", "nl", False)]
    assert items[0].rendered.template_file == "templates/nl/welcome/hello.md"


def test_one_person_is_shown_in_their_own_language_and_found_by_any_spelling(
        loaded: Project) -> None:
    items = build_preview(loaded, "welcome", TODAY, email=" Ann.DeVries@example.org")
    assert shown(items) == [("hello", "skill-builder", "nl", "ann.devries@example.org", True),
                            ("first-course", "skill-builder", "nl", "ann.devries@example.org",
                             True)]
    assert items[0].outside is None
    assert items[0].rendered.subject == "Ann, je leerplatform staat voor je klaar"


def test_a_person_the_campaign_does_not_target_is_shown_with_the_reason(scaffold: Path) -> None:
    project = edit_campaign(scaffold, lambda c: c["audience"].update(personas=["newcomer"]))
    item = build_preview(project, "welcome", TODAY, email="bob.smith@example.org")[0]
    assert item.outside == "their persona is compelled, and the campaign is for newcomer"


@pytest.mark.parametrize(("options", "message"), [
    ({"step_id": "bye"}, "campaign 'welcome' has no step 'bye'; its steps: hello, first-course"),
    ({"persona_id": "pilot"}, "no persona 'pilot'; personas: compelled, newcomer"),
    ({"language": "fr"}, "--lang fr: not one of this project's languages (en, nl)"),
    ({"email": "nobody@example.org"}, "nobody@example.org is not in people.csv"),
    ({"email": "bob.smith@example.org", "sample_people": True},
     "--person shows a real person from the export; leave out --sample-people"),
])
def test_a_wrong_choice_is_one_line_that_says_what_exists(
        loaded: Project, options: dict[str, Any], message: str) -> None:
    with pytest.raises(LdmailError) as caught:
        build_preview(loaded, "welcome", TODAY, **options)
    assert str(caught.value).startswith(message)


def test_a_step_with_variants_shows_each_for_a_persona_and_the_assigned_one_for_a_person(
        scaffold: Path) -> None:
    def variants(campaign: dict[str, Any]) -> None:
        campaign["steps"][0] = {"id": "hello", "after": "0d", "variants": [
            {"id": "short", "template": "welcome/hello", "weight": 3},
            {"id": "long", "template": "welcome/first-course"}]}
    project = edit_campaign(scaffold, variants)
    items = build_preview(project, "welcome", TODAY, step_id="hello", persona_id="newcomer")
    assert [item.variant.id for item in items if item.variant] == ["short", "long"]
    assert [item.rendered.template_file for item in items] == \
        ["templates/en/welcome/hello.md", "templates/en/welcome/first-course.md"]
    step = items[0].step
    assert variant_summary(step, items[0].variant, assigned=False) == \
        "short, sent to 75% of people (the other: long)"
    person = build_preview(project, "welcome", TODAY, step_id="hello",
                           email="bob.smith@example.org")
    assert len(person) == 1 and person[0].variant in step.choices
    summary = variant_summary(step, person[0].variant, assigned=True)
    assert summary is not None and summary.endswith("; this person gets it")


def test_a_conditional_step_says_whether_it_holds_for_the_person(scaffold: Path) -> None:
    project = edit_campaign(scaffold, lambda c: c["steps"][1].update(
        when="reached('registered', 'platform')"))
    persona = build_preview(project, "welcome", TODAY, step_id="first-course",
                            persona_id="newcomer")
    assert persona[0].branch == "sent only when reached('registered', 'platform')"
    person = build_preview(project, "welcome", TODAY, step_id="first-course",
                           email="bob.smith@example.org")
    assert person[0].branch == ("reached('registered', 'platform'): false for this person "
                                "now: the step would be skipped")


def with_managers(scaffold: Path, managers: dict[str, str]) -> None:
    """A manager_email column in the export, filled for the people in `managers`."""
    audiences = scaffold / "audiences.yaml"
    data = yaml.safe_load(audiences.read_text(encoding="utf-8"))
    data["people"]["columns"]["manager_email"] = "Manager"
    audiences.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    people = scaffold / "people.csv"
    lines = people.read_text(encoding="utf-8").splitlines()
    people.write_text("\n".join([lines[0] + ";Manager"] + [
        f"{line};{managers.get(line.split(';')[0], '')}" for line in lines[1:]]) + "\n",
        encoding="utf-8")


def test_a_step_to_the_manager_goes_to_a_stand_in_manager_for_a_persona(
        scaffold: Path) -> None:
    with_managers(scaffold, {})
    project = edit_campaign(scaffold, lambda c: c["steps"][1].update(to="manager"))
    item = build_preview(project, "welcome", TODAY, step_id="first-course",
                         persona_id="newcomer")[0]
    assert item.about == "chloe.martin@example.org"
    assert item.to == "manager@example.org (the manager of chloe.martin@example.org)"


def test_a_step_to_the_manager_of_a_person_without_one_says_it_is_skipped(
        scaffold: Path) -> None:
    with_managers(scaffold, {"chloe.martin@example.org": "dirk.jansen@example.org"})
    project = edit_campaign(scaffold, lambda c: c["steps"][1].update(to="manager"))
    chloe = build_preview(project, "welcome", TODAY, step_id="first-course",
                          email="chloe.martin@example.org")[0]
    assert chloe.to == "dirk.jansen@example.org (the manager of chloe.martin@example.org)"
    assert chloe.language == "nl"  # the manager's own language, from their row
    bob = build_preview(project, "welcome", TODAY, step_id="first-course",
                        email="bob.smith@example.org")[0]
    assert bob.to == ("(nobody) (the manager of bob.smith@example.org): the export gives no "
                      "manager_email for this person, so a step to the manager is skipped")


def test_a_fallback_language_is_named_on_the_item(scaffold: Path) -> None:
    (scaffold / "templates" / "nl" / "welcome" / "hello.md").unlink()
    project = edit_campaign(scaffold, lambda c: c.update(fallback_language="en"))
    item = build_preview(project, "welcome", TODAY, step_id="hello",
                         email="ann.devries@example.org")[0]
    assert item.fallback == "en (fallback_language: there is no nl template)"


def test_the_html_file_is_named_for_what_it_shows_and_readable_by_its_owner_only(
        loaded: Project) -> None:
    item = build_preview(loaded, "welcome", TODAY, step_id="hello",
                         email="bob.smith@example.org")[0]
    path = write_html(loaded.root, "welcome", item)
    assert path == loaded.root / PREVIEW_FOLDER / "welcome-hello-compelled-en.html"
    assert path.read_text(encoding="utf-8") == item.rendered.html
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_calendar_step_is_summed_up_as_the_reader_will_see_it(scaffold: Path) -> None:
    project = edit_campaign(scaffold, lambda c: c["steps"][0].update(calendar={
        "title": "Coffee", "weekday": "mon", "time": "10:00", "weeks": 6,
        "location": "Room 4"}))
    campaign = project.campaign("welcome")
    assert invite_summary(campaign, campaign.steps[0]) == (
        "Coffee: every Monday at 10:00 for 1h, 6 weeks (Europe/Amsterdam, Room 4); sent as "
        "a meeting request")
    assert invite_summary(campaign, campaign.steps[1]) is None
