"""ldmail.audience.export promises to read an HR/LMS export as Excel really saves it: `;` or
`,` or tabs, UTF-8 with or without a BOM, Windows-1252, UTF-16 "Unicode Text"; headers in any
case and any language the audiences file names; bad rows skipped and named by their line, the
good rows around them still read; and one located line for a file it cannot read at all."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from ldmail.audience.export import (
    MAX_NOTES,
    PeopleStream,
    normalise_email,
    parse_date,
    read_language,
    read_rows,
    scan_audience,
    unique_people,
)
from ldmail.errors import ConfigError
from ldmail.project.config import Project, load_project

TODAY = date(2026, 12, 1)
HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"


def write_people(project: Path, lines: list[str], *, encoding: str = "utf-8",
                 bom: bytes = b"") -> None:
    """The export as Excel writes it: CR-LF line ends, in `encoding`, after `bom`."""
    text = "\r\n".join(lines) + "\r\n"
    (project / "people.csv").write_bytes(bom + text.encode(encoding))


def edit_audiences(project: Path, change: dict[str, Any]) -> None:
    path = project / "audiences.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["people"].update(change)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def stream(project: Path) -> PeopleStream:
    return PeopleStream(load_project(project), TODAY)


def test_a_semicolon_export_in_windows_1252_behind_a_utf8_bom_keeps_its_accents(
        scaffold: Path) -> None:
    """Some tools put a UTF-8 BOM in front of Windows-1252 text: the BOM is never data,
    and a letter such as é is read as Excel meant it."""
    write_people(scaffold, [HEADER, "chloe@example.org;Chloé;Martin;EN;HR;01-10-2019;"],
                 encoding="cp1252", bom=b"\xef\xbb\xbf")
    people = stream(scaffold)
    found = list(people)
    assert people.header[0] == "Email"  # not "\ufeffEmail"
    assert [(p.row, p.email, p.display_name) for p in found] == \
        [(2, "chloe@example.org", "Chloé Martin")]
    assert people.rejected == []


def test_utf8_with_a_bom_and_utf16_unicode_text_are_both_read(scaffold: Path) -> None:
    write_people(scaffold, [HEADER, "ann@example.org;Małgorzata;Nowak;EN;HR;01-10-2019;"],
                 bom=b"\xef\xbb\xbf")
    assert [p.display_name for p in stream(scaffold)] == ["Małgorzata Nowak"]
    # Excel's "Unicode Text": UTF-16 with its BOM, tab-separated.
    write_people(scaffold, [HEADER.replace(";", "\t"),
                            "ann@example.org\tAnnë\tNowak\tEN\tHR\t01-10-2019\t"],
                 encoding="utf-16")
    assert [p.display_name for p in stream(scaffold)] == ["Annë Nowak"]


def test_german_headers_in_another_case_and_german_dates_are_read(scaffold: Path) -> None:
    edit_audiences(scaffold, {"columns": {
        "email": "E-Mail-Adresse", "first_name": "Vorname", "last_name": "Nachname",
        "language": "Sprache", "department": "Abteilung", "start_date": "Eintrittsdatum",
        "certification": "Zertifizierung"}})
    write_people(scaffold, [
        "e-mail-adresse;VORNAME;Nachname;Sprache;Abteilung;Eintrittsdatum;Zertifizierung",
        "jurgen@example.de;Jürgen;Groß;EN;Vertrieb;03.02.2019;"], encoding="cp1252")
    [person] = list(stream(scaffold))
    assert person.email == "jurgen@example.de"
    assert person.attributes["start_date"] == date(2019, 2, 3)
    assert person.attributes["tenure_days"] == (TODAY - date(2019, 2, 3)).days
    assert person.display_name == "Jürgen Groß"


def test_dutch_headers_and_a_language_written_as_its_name_become_a_code_with_a_note(
        scaffold: Path) -> None:
    edit_audiences(scaffold, {"columns": {
        "email": "E-mailadres", "first_name": "Voornaam", "last_name": "Achternaam",
        "language": "Taal", "department": "Afdeling", "start_date": "Startdatum",
        "certification": "Certificering"}})
    write_people(scaffold, [
        "E-mailadres;Voornaam;Achternaam;Taal;Afdeling;Startdatum;Certificering",
        "ann@example.nl;Ann;de Vries;Nederlands;Verkoop;03-02-2019;",
        "piet@example.nl;Piet;Jansen;nl-NL;Verkoop;03-02-2019;"])
    people = stream(scaffold)
    assert [(p.email, p.language) for p in people] == \
        [("ann@example.nl", "nl"), ("piet@example.nl", "nl")]
    # The name is read, and the row is named so the export can be fixed; the tag is simply
    # read.
    assert [(n.row, n.reason) for n in people.loader.notes] == \
        [(2, "language 'Nederlands' read as 'nl'; write the code (en, nl)")]


def test_bad_rows_are_named_by_line_and_the_good_rows_around_them_are_read(
        scaffold: Path) -> None:
    write_people(scaffold, [
        HEADER,
        "ann@example.org;Ann;de Vries;NL;Sales;03-02-2019;",
        "not-an-address;Bob;Smith;EN;Finance;15-06-2015;",
        "chloe@example.org;Chloé;Martin;EN;HR;31-02-2026;",
        "dirk@example.org;Dirk;Jansen;NL;IT",
        "emma@example.org;Emma;Bakker;NL;Support;20-08-2021;;extra",
        "fay@example.org;Fay;Ray;EN;Sales;0001-01-01;",
        "gus@example.org;Gus;Lee;EN;Sales;01-01-2020;"])
    people = stream(scaffold)
    assert [(p.row, p.email) for p in people] == \
        [(2, "ann@example.org"), (8, "gus@example.org")]
    reasons = {r.row: r.reason for r in people.rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert reasons[3].startswith("invalid e-mail address 'not-an-address'")
    assert reasons[4].startswith("start_date: unreadable date '31-02-2026': no such day")
    assert reasons[5].startswith("5 field(s) where the header has 7: the row is cut off")
    assert reasons[6].startswith("8 fields where the header has 7: a cell holds the delimiter")
    assert "outside the years 1900-2200" in reasons[7]
    assert {r.row: r.email for r in people.rejected}[4] == "chloe@example.org"


def test_a_row_saved_with_another_delimiter_is_rejected_with_the_reason(scaffold: Path) -> None:
    write_people(scaffold, [HEADER, "ann@example.org;Ann;X;EN;Sales;01-01-2020;",
                            "bob@example.org,Bob,X,EN,Sales,01-01-2020,"])
    people = stream(scaffold)
    assert [p.email for p in people] == ["ann@example.org"]
    [rejected] = people.rejected
    assert rejected.row == 3
    assert rejected.reason.startswith("one field where the header has 7: this row is "
                                      "separated by ','")


def test_an_unclosed_quote_is_reported_and_the_rows_it_swallowed_are_read_again(
        scaffold: Path) -> None:
    write_people(scaffold, [HEADER, 'ann@example.org;"Ann;X;EN;Sales;01-01-2020;',
                            "bob@example.org;Bob;X;EN;Sales;01-01-2020;",
                            "cid@example.org;Cid;X;EN;Sales;01-01-2020;"])
    people = stream(scaffold)
    assert [(p.row, p.email) for p in people] == [(3, "bob@example.org"),
                                                  (4, "cid@example.org")]
    [rejected] = people.rejected
    assert rejected.row == 2
    assert 'a quote (") opened on line 2 is not closed' in rejected.reason


def test_a_repeated_address_is_kept_once_and_the_later_row_is_named(scaffold: Path) -> None:
    write_people(scaffold, [HEADER, "ann@example.org;Ann;X;EN;Sales;01-01-2020;",
                            "bob@example.org;Bob;X;EN;Sales;01-01-2020;",
                            "ANN@Example.ORG;Ann;Again;EN;Sales;01-01-2020;"])
    people = stream(scaffold)
    assert [p.row for p in unique_people(people)] == [2, 3]
    [rejected] = people.rejected
    assert (rejected.row, rejected.reason) == (
        4, "duplicate address ann@example.org (first seen on row 2); keep one row per person")


@pytest.mark.parametrize(("content", "message"), [
    (b"PK\x03\x04\x14\x00", "people.csv: this is a zip file, probably an Excel workbook (.xlsx), "
                            "not CSV; in Excel use Save As > CSV UTF-8"),
    (b"", "people.csv:1: the file is empty; it needs a header row"),
    (b"E\x00m\x00a\x00i\x00l\x00", "people.csv: the file holds NUL bytes"),
])
def test_a_file_that_is_no_csv_is_one_located_line(scaffold: Path, content: bytes,
                                                    message: str) -> None:
    (scaffold / "people.csv").write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        stream(scaffold)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_byte_the_configured_encoding_cannot_read_names_its_line(scaffold: Path) -> None:
    edit_audiences(scaffold, {"encoding": "utf-8"})
    write_people(scaffold, [HEADER, "ann@example.org;Ann;X;EN;Sales;01-01-2020;",
                            "bob@example.org;Björn;X;EN;Sales;01-01-2020;"], encoding="cp1252")
    with pytest.raises(ConfigError, match=r"people.csv: line 3 is not utf-8 \(byte 0xf6\)"):
        stream(scaffold)


def test_a_missing_column_lists_the_headers_and_spots_the_wrong_delimiter(
        scaffold: Path) -> None:
    write_people(scaffold, [HEADER.replace("Department", "Team"),
                            "ann@example.org;Ann;X;EN;Sales;01-01-2020;"])
    with pytest.raises(ConfigError) as raised:
        stream(scaffold)
    assert "people.csv has no column 'Department' (for department); its columns are: Email, " \
        "First name" in str(raised.value)
    assert str(raised.value).endswith("fix people.columns")
    # A file saved with commas while the audiences file says ';'.
    edit_audiences(scaffold, {"delimiter": ";"})
    write_people(scaffold, [HEADER.replace(";", ","),
                            "ann@example.org,Ann,X,EN,Sales,01-01-2020,"])
    with pytest.raises(ConfigError, match="the file seems separated by ',', not ';'"):
        stream(scaffold)


def test_personas_first_match_wins_and_an_unknown_persona_in_the_export_rejects_the_row(
        scaffold: Path) -> None:
    edit_audiences(scaffold, {"columns": {
        "email": "Email", "first_name": "First name", "last_name": "Last name",
        "language": "Language", "department": "Department", "start_date": "Start date",
        "certification": "Certification", "persona": "Persona"}})
    write_people(scaffold, [
        HEADER + ";Persona",
        # certified and new: "compelled" is listed first in the scaffold
        "ann@example.org;Ann;X;EN;Sales;01-11-2026;GDPR;",
        "bob@example.org;Bob;X;EN;Finance;01-01-2010;;",
        "cid@example.org;Cid;X;EN;Sales;01-01-2010;;newcomer",
        "dan@example.org;Dan;X;EN;Sales;01-01-2010;;astronaut"])
    people = stream(scaffold)
    assert [(p.email, p.persona) for p in people] == [
        ("ann@example.org", "compelled"), ("bob@example.org", "broad-developer"),
        ("cid@example.org", "newcomer")]
    [rejected] = people.rejected
    assert rejected.row == 5
    assert rejected.reason.startswith("persona 'astronaut' is not defined in audiences.yaml")


def test_a_lost_letter_and_a_bad_manager_address_are_notes_not_rejections(
        scaffold: Path) -> None:
    edit_audiences(scaffold, {"columns": {
        "email": "Email", "first_name": "First name", "last_name": "Last name",
        "language": "Language", "department": "Department", "start_date": "Start date",
        "certification": "Certification", "manager_email": "Manager"}})
    write_people(scaffold, [HEADER + ";Manager",
                            "ann@example.org;Ma?gorzata;X;EN;Sales;01-01-2020;;boss@",
                            "bob@example.org;Bob;X;EN;Sales;01-01-2020;;Boss@Example.org"])
    people = stream(scaffold)
    found = list(people)
    assert [p.attributes["manager_email"] for p in found] == ["", "boss@example.org"]
    assert people.rejected == []
    notes = [(n.row, n.reason) for n in people.loader.notes]
    assert notes[0][0] == 2 and "'Ma?gorzata' has a '?' where a letter was probably lost" \
        in notes[0][1]
    assert notes[1][0] == 2 and notes[1][1].startswith("manager_email: invalid e-mail address")
    assert people.loader.note_count == 2 < MAX_NOTES


def test_only_the_rows_asked_for_are_built(scaffold: Path) -> None:
    people = PeopleStream(load_project(scaffold), TODAY, rows={3, 5})
    assert [p.row for p in people] == [3, 5]


def test_a_scan_counts_personas_languages_and_the_split_of_each_campaign(
        loaded: Project) -> None:
    scan = scan_audience(loaded, TODAY, keep=1, email="dirk.jansen@example.org",
                         wheres=["department == 'Sales'", "nobody_has_this > 1"],
                         campaigns=["welcome"])
    assert scan.people == 8 and scan.rejected == []
    assert sum(sum(c.values()) for c in scan.languages.values()) == 8
    assert scan.found is not None and scan.found.row == 5
    mailed, held = scan.groups["welcome"]
    assert mailed + held == 8
    assert "department == 'Sales'" not in scan.failures
    assert "nobody_has_this" in scan.failures["nobody_has_this > 1"]


def test_read_rows_gives_line_numbers_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("E-mail,Reden\r\nann@example.org,left\r\n\r\n,\r\nbob@example.org,\r\n",
                    encoding="utf-8")
    header, rows = read_rows(path, "list.csv")
    assert header == ["E-mail", "Reden"]
    assert list(rows) == [(2, ["ann@example.org", "left"]), (5, ["bob@example.org", ""])]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-31", date(2026, 3, 31)), ("31-03-2026", date(2026, 3, 31)),
    ("31/03/2026", date(2026, 3, 31)), ("31.03.2026", date(2026, 3, 31)),
    (" 2026/03/31 ", date(2026, 3, 31)), ("31-03-26", date(2026, 3, 31))])
def test_dates_are_read_iso_or_day_first(text: str, expected: date) -> None:
    assert parse_date(text) == expected


def test_an_unreadable_date_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match=r"unreadable date 'March 3rd' \(write 2026-03-31"):
        parse_date("March 3rd")


def test_addresses_are_lower_cased_and_an_international_domain_kept_as_ascii() -> None:
    assert normalise_email("  Ann.De-Vries@Example.ORG ") == "ann.de-vries@example.org"
    assert normalise_email("jo@bücher.de") == "jo@xn--bcher-kva.de"
    with pytest.raises(ValueError, match="the part before the @ has non-ASCII characters"):
        normalise_email("jürgen@example.de")
    with pytest.raises(ValueError, match="empty e-mail address"):
        normalise_email("   ")


def test_a_language_outside_the_campaigns_gets_the_default_with_a_note() -> None:
    languages = ("en", "nl")
    assert read_language("NL", languages, "en") == ("nl", None)
    assert read_language("", languages, "en") == ("en", None)
    code, note = read_language("Deutsch", languages, "en")
    assert code == "en"
    assert note == ("language 'Deutsch' (German) is not one of the campaign languages (en, nl): "
                    "this person gets 'en'")
    code, note = read_language("Nederlnds", languages, "en")
    assert code == "en" and note is not None and "did you mean 'nl'?" in note
