"""ldmail.project.samples: stand-in people with every mapped attribute filled in and a name
fitting the language (the same one for the same persona and language, a different one for
each persona), and a stand-in manager; never a real person's name or address."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from email_validator import validate_email

from ldmail.project.config import Project
from ldmail.project.samples import NAMES, sample_manager, sample_person

TODAY = date(2026, 3, 2)


def test_every_mapped_attribute_is_filled_in(loaded: Project) -> None:
    person = sample_person(loaded, "en", TODAY, "newcomer")
    assert set(loaded.audiences.people.columns) | {"today", "tenure_days"} <= set(person)
    assert person["department"] == "Sample department"
    assert person["start_date"] == TODAY - timedelta(days=30)  # a date attribute is a date
    assert person["tenure_days"] == 30
    assert (person["language"], person["today"]) == ("en", TODAY)


def test_the_name_fits_the_language_and_the_address_is_a_safe_example(loaded: Project) -> None:
    for language, (firsts, lasts) in NAMES.items():
        person = sample_person(loaded, language, TODAY, "compelled")
        assert person["language"] == language
        assert person["first_name"] in firsts and person["last_name"] in lasts
        address = person["email"]
        assert address.isascii() and address.endswith("@example.org")
        validate_email(address, check_deliverability=False)


def test_the_same_persona_and_language_always_get_the_same_person(loaded: Project) -> None:
    one = sample_person(loaded, "de", TODAY, "newcomer")
    again = sample_person(loaded, "de", TODAY + timedelta(days=9), "newcomer")
    assert (one["first_name"], one["last_name"], one["email"]) == \
        (again["first_name"], again["last_name"], again["email"])


def test_a_language_without_names_of_its_own_gets_english_ones(loaded: Project) -> None:
    person = sample_person(loaded, "sv", TODAY)
    firsts, lasts = NAMES["en"]
    assert person["first_name"] in firsts and person["last_name"] in lasts
    assert person["language"] == "sv"


def test_without_a_start_date_there_is_no_tenure(loaded: Project) -> None:
    columns = {"email": "Email", "first_name": "First name"}
    people = loaded.audiences.people.model_copy(update={"columns": columns, "dates": []})
    audiences = loaded.audiences.model_copy(update={"people": people})
    project = Project(loaded.root, loaded.settings, audiences, loaded.campaigns)
    person = sample_person(project, "en", TODAY)
    assert person["tenure_days"] is None and "start_date" not in person


def test_each_persona_gets_a_different_stand_in(loaded: Project) -> None:
    for language in NAMES:
        addresses = {sample_person(loaded, language, TODAY, persona)["email"]
                     for persona in loaded.audiences.personas}
        assert len(addresses) == len(loaded.audiences.personas), language


def test_each_persona_and_no_persona_get_different_stand_ins_however_many(
        loaded: Project) -> None:
    personas = {f"persona-{index}": next(iter(loaded.audiences.personas.values()))
                for index in range(80)}  # more personas than a language has names
    audiences = loaded.audiences.model_copy(update={"personas": personas})
    project = Project(loaded.root, loaded.settings, audiences, loaded.campaigns)
    addresses = [sample_person(project, "nl", TODAY, persona)["email"]
                 for persona in [*personas, None]]
    assert len(set(addresses)) == len(addresses)
    assert all(validate_email(a, check_deliverability=False) for a in addresses)


@pytest.mark.parametrize(("first", "last", "language", "local"), [
    ("Jonas", "Müller", "de", "jonas.mueller"), ("Lucía", "Sánchez", "es", "lucia.sanchez"),
    ("Chloé", "Lefèvre", "fr", "chloe.lefevre"), ("Maja", "Wiśniewska", "pl", "maja.wisniewska"),
    ("Łukasz", "Ørsted", "pl", "lukasz.orsted"), ("Sanne", "de Jong", "nl", "sanne.dejong")])
def test_an_address_keeps_the_letters_under_the_accents(
        loaded: Project, monkeypatch: pytest.MonkeyPatch, first: str, last: str,
        language: str, local: str) -> None:
    monkeypatch.setitem(NAMES, language, ((first,), (last,)))
    audiences = loaded.audiences.model_copy(update={"personas": {}})
    project = Project(loaded.root, loaded.settings, audiences, loaded.campaigns)
    assert sample_person(project, language, TODAY)["email"] == f"{local}@example.org"


def test_the_manager_is_a_stand_in_too() -> None:
    manager = sample_manager("nl")
    firsts, lasts = NAMES["nl"]
    first, last = manager["name"].split(" ", 1)
    assert manager["email"] == "manager@example.org"
    assert manager["first_name"] == first and first in firsts and last in lasts
    assert sample_manager("nl") == manager
