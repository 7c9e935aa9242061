"""People exports as HR tools write them: delimiters, encodings, bad rows."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli

HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"


def write_export(project: Path, rows: list[str], *, encoding: str = "utf-8",
                 bom: bool = False) -> None:
    text = "\r\n".join([HEADER, *rows]) + "\r\n"
    data = text.encode(encoding)
    (project / "people.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def test_cp1252_semicolon_with_bom(project: Path, cli: Cli) -> None:
    write_export(project, [
        "ann@example.org;Ann;Müller;NL;Sales;03-02-2019;",
        "not-an-address;Bob;Smith;EN;IT;01-01-2020;",
        "celine@example.org;Céline;Dubois;EN;HR;31-02-2020;",
        "ANN@example.org;Ann;Again;NL;Sales;03-02-2019;",
        "dirk@example.org;Dirk;Jansen;NL;IT;2015-06-01;",
        "zoe@example.org;Zoë;Peeters;NL;Finance;01.10.2026;ERP",
    ], encoding="cp1252", bom=True)
    result = cli("audience", "--project", project, "--now", "2026-11-22")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "3 people loaded, 3 row(s) rejected" in out
    assert "row 3: invalid e-mail address 'not-an-address'" in out
    assert "row 4: start_date: unreadable date '31-02-2020'" in out
    assert "row 5: duplicate address ann@example.org (first seen on row 2)" in out


def test_personas_first_match_and_explicit_column(project: Path, cli: Cli) -> None:
    audiences = project / "audiences.yaml"
    text = audiences.read_text(encoding="utf-8")
    audiences.write_text(text.replace("    certification: Certification\n",
                                      "    certification: Certification\n"
                                      "    persona: Persona\n"), encoding="utf-8")
    (project / "people.csv").write_text(
        HEADER + ";Persona\n"
        "a@example.org;A;A;EN;Sales;01-01-2010;GDPR;\n"          # compelled wins over sales
        "b@example.org;B;B;EN;Sales;01-01-2010;;\n"              # skill-builder
        "c@example.org;C;C;EN;IT;01-11-2026;;\n"                 # newcomer
        "d@example.org;D;D;EN;IT;01-01-2010;;skill-builder\n"    # explicit column overrides
        "e@example.org;E;E;EN;IT;01-01-2010;;wizard\n",          # unknown persona: rejected
        encoding="utf-8")
    result = cli("audience", "--project", project, "--now", "2026-11-22")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip()
            for line in result.stdout.splitlines() if line.startswith("│")}
    assert rows == {"compelled": "1", "newcomer": "1", "skill-builder": "2",
                    "broad-developer": "0", "(no persona)": "0"}
    assert "row 6: persona 'wizard' is not defined in audiences.yaml" in result.stdout


def test_comma_utf8_export(project: Path, cli: Cli) -> None:
    (project / "people.csv").write_text(
        HEADER.replace(";", ",") + "\n" + "x@example.org,X,Y,EN,IT,01-01-2010,\n",
        encoding="utf-8")
    result = cli("audience", "--project", project)
    assert "1 people loaded, 0 row(s) rejected" in result.stdout


def test_missing_column_names_the_headers(project: Path, cli: Cli) -> None:
    (project / "people.csv").write_text("Mail;Name\nx@example.org;X\n", encoding="utf-8")
    result = cli("audience", "--project", project)
    assert result.exit_code == 1
    assert "people.csv has no column 'Email' (for email)" in result.stderr
    assert "its columns are: Mail, Name" in result.stderr


def test_empty_export(project: Path, cli: Cli) -> None:
    (project / "people.csv").write_text("", encoding="utf-8")
    result = cli("audience", "--project", project)
    assert result.exit_code == 1
    assert "people.csv:1: the file is empty" in result.stderr
