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
    assert "3 people loaded, 3 rows rejected" in out
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
    assert "1 person loaded, 0 rows rejected" in result.stdout


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


def _cut(project: Path, keep: int) -> tuple[str, str]:
    """people.csv cut after `keep` bytes, as a copy or save stopped half-way leaves it (no
    newline at the end); returns the cut row's address and the part of it that is left."""
    data = (project / "people.csv").read_bytes()[:keep]
    (project / "people.csv").write_bytes(data)
    last = data.decode("utf-8-sig").splitlines()[-1]
    return last.split(";")[3], last


def test_a_row_cut_off_at_the_end_is_rejected_and_its_person_stays(example: Path, cli: Cli
                                                                   ) -> None:
    """The export's last row cut after its fourth field: rejected by number, and its person
    (counted as present) keeps every enrolment."""
    from .smtp_server import ledger_rows

    assert cli("send", "--project", example, "--now", "2026-12-08T10:00+01:00").exit_code == 0
    full = (example / "people.csv").read_bytes()
    last_row = full.rstrip(b"\r\n").rsplit(b"\n", 1)[1]
    fourth_field = len(b";".join(last_row.split(b";")[:4]))
    email, left = _cut(example, len(full.rstrip(b"\r\n")) - len(last_row) + fourth_field)
    rows = len(full.decode("utf-8-sig").splitlines())
    theirs = "SELECT campaign, state, exit_reason FROM enrolments WHERE email = ?"
    before = ledger_rows(example, theirs, (email,))
    result = cli("send", "--project", example, "--now", "2026-12-09T10:00+01:00")
    assert result.exit_code == 0, result.output
    audience = cli("audience", "--project", example, "--now", "2026-12-09T10:00+01:00").stdout
    assert f"row {rows}: 4 field(s) where the header has 12: the row is cut off" in audience
    assert "1 row rejected" in audience
    after = ledger_rows(example, theirs, (email,))
    assert after == before and any(row["state"] == "active" for row in after), (left, after)


def test_a_row_cut_in_a_field_never_reaches_a_message(example: Path, cli: Cli) -> None:
    """`head -c 700` of the export: the row cut inside a name is rejected, so no preview
    greets a person by half a first name."""
    email, left = _cut(example, 700)
    first_name_part = left.split(";")[1]
    audience = cli("audience", "--project", example, "--now", "2026-12-08T10:00+01:00").stdout
    assert "field(s) where the header has 12: the row is cut off" in audience
    preview = cli("preview", "-c", "platform-launch", "--project", example, "--now",
                  "2026-12-08T10:00+01:00", "--person", email)
    assert f"{first_name_part}," not in preview.output
    assert preview.exit_code == 1, preview.output
