"""A/B variants of a step: a deterministic split by weight, recorded in the ledger, rendered
by validate, preview and the gallery, and compared on the goal in the report by the holdout
comparison's statistics, checked here against a hand computation."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from email import message_from_bytes
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path

import pytest

from .conftest import Cli
from .test_report import rows

DAY_1 = "2026-12-01T10:00+01:00"  # a Tuesday: the welcome step goes out
HEADER = "Email;First name;Last name;Language;Department;Start date;Certification"
HELLO = "  - {id: hello, after: 0d, template: welcome/hello}"


def with_variants(project: Path, line: str) -> Path:
    """The scaffold whose first step is an A/B test; variant b has templates of its own."""
    campaign = project / "campaigns" / "welcome.yaml"
    text = campaign.read_text(encoding="utf-8")
    assert HELLO in text
    campaign.write_text(text.replace(HELLO, line), encoding="utf-8")
    for language, subject in (("en", "ten minutes to your first course"),
                              ("nl", "tien minuten tot je eerste training")):
        folder = project / "templates" / language / "welcome"
        source = (folder / "hello.md").read_text(encoding="utf-8")
        first_line, rest = source.split("\n", 1)
        (folder / "hello-b.md").write_text(
            "{% block subject %}{{ person.first_name }}, " + subject + "{% endblock %}\n" + rest,
            encoding="utf-8")
    return project


def weighted_as(project: Path, a: str, b: str) -> Path:
    return with_variants(project, "  - {id: hello, after: 0d, variants: ["
                         f"{{id: a, template: welcome/hello, weight: {a}}}, "
                         f"{{id: b, template: welcome/hello-b, weight: {b}}}]}}")


def weighted(project: Path, a: int = 70, b: int = 30) -> Path:
    return weighted_as(project, str(a), str(b))


def write_people(project: Path, count: int) -> list[str]:
    """`count` people in Sales (English and Dutch), none with a certification."""
    emails = [f"person{i:04d}@example.org" for i in range(count)]
    lines = [HEADER, *(f"{email};P{i};Tester;{'NL' if i % 3 == 0 else 'EN'};Sales;03-02-2019;"
                       for i, email in enumerate(emails))]
    (project / "people.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return emails


def send(cli: Cli, project: Path, now: str = DAY_1) -> None:
    result = cli("send", "--project", project, "--now", now)
    assert result.exit_code == 0, result.output


def received(project: Path) -> dict[str, str]:
    """Address -> the variant its hello message carried, read from the subject it received."""
    found: dict[str, str] = {}
    for path in sorted((project / ".ldmail" / "outbox").glob("*.eml")):
        headers = BytesHeaderParser(policy=default).parsebytes(path.read_bytes())
        if str(headers["X-Ldmail-Step"]) != "hello":
            continue
        subject = str(headers["Subject"])
        variant = "b" if "ten minutes" in subject or "tien minuten" in subject else "a"
        found[headers["To"].addresses[0].addr_spec] = variant
    return found


def recorded(project: Path) -> dict[str, str]:
    return {str(email): str(variant) for email, variant in
            rows(project, "SELECT email, variant FROM messages WHERE step = 'hello'")}


# -- the split ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_thousand_people_split_by_weight_and_the_same_way_in_every_run(
        project: Path, cli: Cli, tmp_path: Path) -> None:
    """70/30 weights over 1,000 people: each mailed person gets one variant, the shares are
    within 5 points of the weights, the ledger records what each received, and a second,
    independent run (another ledger) gives every person the same variant again."""
    weighted(project)
    emails = write_people(project, 1000)
    again = tmp_path / "again"
    shutil.copytree(project, again)
    send(cli, project)
    first = received(project)
    mailed = {e for (e,) in rows(project, "SELECT email FROM enrolments WHERE grp = "
                                            "'treatment'")}
    assert len(mailed) > 850 and set(first) == mailed  # the holdout (10%) gets nothing
    assert recorded(project) == first
    share = sum(v == "a" for v in first.values()) / len(first)
    assert 0.65 <= share <= 0.75, share
    # The holdout is drawn independently: its members would split the same way.
    held = set(emails) - mailed
    assert held and not held & set(first)

    send(cli, again)
    assert received(again) == first and recorded(again) == first


def test_equal_weights_by_default_and_each_message_is_its_variant(project: Path,
                                                                   cli: Cli) -> None:
    """Without weights the variants are sent equally often; a message is its variant's
    template (the subject read back agrees with the ledger), and its links say which variant
    it was (utm_content)."""
    with_variants(project, "  - {id: hello, after: 0d, variants: [{id: a, template: "
                           "welcome/hello}, {id: b, template: welcome/hello-b}]}")
    write_people(project, 300)
    send(cli, project)
    got = received(project)
    share = sum(v == "a" for v in got.values()) / len(got)
    assert 0.40 <= share <= 0.60, share
    assert recorded(project) == got
    for path in sorted((project / ".ldmail" / "outbox").glob("*.eml"))[:40]:
        message = message_from_bytes(path.read_bytes(), policy=default)
        variant = got[message["To"].addresses[0].addr_spec]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert f"utm_content=hello.{variant}" in html


@pytest.mark.parametrize(("a", "b"), [("5e-324", "5e-324"), ("3e307", "3e307")])
def test_tiny_or_huge_weights_split_as_their_ratio(project: Path, cli: Cli, a: str,
                                                   b: str) -> None:
    """Weights are relative at any scale: two equal weights near the ends of what a number can
    hold still send half the people each variant."""
    weighted_as(project, a, b)
    write_people(project, 300)
    send(cli, project)
    got = received(project)
    share = sum(v == "a" for v in got.values()) / len(got)
    assert 0.40 <= share <= 0.60, share



@pytest.mark.parametrize(("a", "b", "why"), [
    ("1e308", "1e308", "step 'hello': the weights of its variants add up to more than a "
                       "number can hold; weights are relative, so give small numbers such as "
                       "70 and 30"),
    (".nan", "1", "nan is not a usable weight"),
    (".inf", "1", "inf is not a usable weight"),
    ("0", "1", "0 is not a usable weight"),
])
def test_weights_that_cannot_split_are_an_error_naming_file_and_step(
        project: Path, cli: Cli, a: str, b: str, why: str) -> None:
    """1e308 + 1e308 once sent every person to one arm: no send, validate and send say why."""
    weighted_as(project, a, b)
    write_people(project, 20)

    checked = cli("validate", "--project", project)
    sent = cli("send", "--project", project, "--now", DAY_1)

    for result in (checked, sent):
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert re.search(r"campaigns/welcome\.yaml:13: steps\.variants(\.weight)?: "
                         + re.escape(why), result.output), result.output
    assert not (project / ".ldmail" / "outbox").exists() or \
        not list((project / ".ldmail" / "outbox").glob("*.eml"))


# -- what an author sees -------------------------------------------------------------------------

def test_validate_renders_every_variant_and_names_a_broken_one(project: Path,
                                                               cli: Cli) -> None:
    """Every variant is rendered for every persona and language (16 renders become 24); a
    mistake in one variant's template is reported at that file and line."""
    weighted(project)
    result = cli("validate", "--project", project)
    assert result.exit_code == 0, result.output
    assert "ok: 1 campaign(s), 24 renders checked" in result.stdout
    broken = project / "templates" / "nl" / "welcome" / "hello-b.md"
    lines = broken.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Hoi"))
    lines[at] = "Hoi {{ person.nickname }},"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert (f"templates/nl/welcome/hello-b.md:{at + 1}: undefined variable: person has no "
            "'nickname'") in result.stdout
    assert "hello.md" not in result.stdout


def test_validate_wants_each_variant_in_every_language(project: Path, cli: Cli) -> None:
    weighted(project)
    (project / "templates" / "nl" / "welcome" / "hello-b.md").unlink()
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert ("campaigns/welcome.yaml:13: variant 'b' of step 'hello' has no 'nl' template: "
            "create templates/nl/welcome/hello-b.md") in result.stdout


def test_preview_person_shows_the_variant_they_get(project: Path, cli: Cli) -> None:
    """`preview --person` renders the variant that person is sent, and says which; the send
    records the same one. A persona preview shows every variant."""
    weighted(project)
    emails = write_people(project, 40)
    send(cli, project)
    got = recorded(project)
    for variant in ("a", "b"):
        email = next(e for e in emails if got.get(e) == variant)
        result = cli("preview", "-c", "welcome", "--project", project, "--person", email,
                     "--step", "hello", "--now", DAY_1)
        assert result.exit_code == 0, result.output
        share, other = ("70%", "b") if variant == "a" else ("30%", "a")
        assert f"· variant {variant} ·" in result.stdout
        assert (f"Variant:   {variant}, sent to {share} of people (the other: {other}); this "
                "person gets it") in result.stdout
        subject = {"a": "your learning platform is open",
                   "b": "ten minutes to your first course"}[variant]
        assert subject in result.stdout or \
            {"a": "je leerplatform", "b": "tien minuten"}[variant] in result.stdout
        history = cli("history", email, "--project", project)
        assert f"hello (variant {variant})" in history.stdout.replace("\n", "")
    personas = cli("preview", "-c", "welcome", "--project", project, "--persona", "newcomer",
                   "--step", "hello", "--sample-people")
    assert personas.exit_code == 0, personas.output
    assert "· variant a ·" in personas.stdout and "· variant b ·" in personas.stdout


def test_gallery_has_a_page_per_variant(project: Path, cli: Cli, tmp_path: Path) -> None:
    weighted(project)
    folder = tmp_path / "gallery"
    result = cli("preview", "--out", folder, "--project", project, "--sample-people")
    assert result.exit_code == 0, result.output
    # hello in two variants and first-course, for 4 personas in 2 languages
    assert "Gallery of 24 messages written to" in result.stdout
    pages = {p.name for p in folder.glob("*--*.html")}
    for variant in ("a", "b"):
        assert f"welcome--hello--{variant}--newcomer--nl.html" in pages
        assert (folder / "mail" / f"welcome--hello--{variant}--newcomer--nl.html").is_file()
    page = (folder / "welcome--hello--b--newcomer--en.html").read_text(encoding="utf-8")
    assert "<dt>Variant</dt><dd>b, sent to 30% of people (the other: a)</dd>" in page
    assert "ten minutes to your first course" in page
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "<tr><td>hello · b</td>" in index and "hello · 2 variants" in index


# -- the report, by hand --------------------------------------------------------------------------

Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's score interval, written out (Newcombe 1998, eq. 3)."""
    p = k / n
    root = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return ((p + Z * Z / (2 * n) - root) / (1 + Z * Z / n),
            (p + Z * Z / (2 * n) + root) / (1 + Z * Z / n))


def fisher(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact p: the tables with these margins no likelier than this one."""
    column = k1 + k2

    def probability(x: int) -> float:
        return math.comb(n1, x) * math.comb(n2, column - x) / math.comb(n1 + n2, column)

    seen = probability(k1)
    return sum(probability(x) for x in range(max(0, column - n2), min(n1, column) + 1)
               if probability(x) <= seen * (1 + 1e-7))


def test_report_compares_variants_as_computed_by_hand(project: Path, cli: Cli) -> None:
    """Variant b against the reference a: who received each (from the messages delivered),
    who of them registered after it, the difference in points, Newcombe's interval and
    Fisher's p, the same in the table, JSON, CSV and HTML."""
    with_variants(project, "  - {id: hello, after: 0d, variants: [{id: a, template: "
                           "welcome/hello}, {id: b, template: welcome/hello-b}]}")
    write_people(project, 240)
    send(cli, project)
    got = received(project)
    group_a = sorted(e for e, v in got.items() if v == "a")
    group_b = sorted(e for e, v in got.items() if v == "b")
    # 40 of a and 16 of b register the next day; one of a only after the report's moment,
    # and one of b before the mail was sent (that registration is not the mail's doing).
    lines = [f"{e};registered;course:excel;02-12-2026 14:30"
             for e in group_a[:40] + group_b[:16]]
    lines += [f"{group_a[40]};registered;course:excel;10-12-2026 09:00",
              f"{group_b[16]};registered;course:excel;01-12-2026 08:00"]
    events = project / "goal-events.csv"
    events.write_text("\n".join(["E-mail;Event;Course;Timestamp", *lines]) + "\n",
                      encoding="utf-8")
    assert cli("events", "import", events, "--project", project).exit_code == 0

    n_a, k_a, n_b, k_b = len(group_a), 40, len(group_b), 16
    difference = k_b / n_b - k_a / n_a
    (low_a, high_a), (low_b, high_b) = wilson(k_a, n_a), wilson(k_b, n_b)
    low = difference - math.sqrt((k_b / n_b - low_b) ** 2 + (high_a - k_a / n_a) ** 2)
    high = difference + math.sqrt((high_b - k_b / n_b) ** 2 + (k_a / n_a - low_a) ** 2)
    p = fisher(k_b, n_b, k_a, n_a)
    outcome = "unclear" if low <= 0 <= high and p >= 0.05 else \
        ("lowered" if high < 0 and p < 0.05 else "raised" if low > 0 and p < 0.05
         else "borderline")

    now = "2026-12-03T12:00+01:00"
    result = cli("report", "-c", "welcome", "--project", project, "--now", now,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    arms = json.loads(result.stdout)["campaigns"][0]["variants"]
    assert [(a["step"], a["variant"], a["reference"]) for a in arms] == [
        ("hello", "a", "a"), ("hello", "b", "a")]
    reference, challenger = arms
    assert (reference["variant_n"], reference["variant_converted"]) == (n_a, k_a)
    assert reference["outcome"] == "reference" and reference["p_value"] is None
    assert (challenger["variant_n"], challenger["variant_converted"],
            challenger["reference_n"], challenger["reference_converted"]) == (n_b, k_b, n_a, k_a)
    assert challenger["variant_share"] == 0.5
    assert challenger["uplift_pp"] == pytest.approx(difference * 100, abs=1e-9)
    assert challenger["ci_low_pp"] == pytest.approx(low * 100, abs=1e-9)
    assert challenger["ci_high_pp"] == pytest.approx(high * 100, abs=1e-9)
    assert challenger["p_value"] == pytest.approx(p, rel=1e-9)
    assert challenger["outcome"] == outcome

    def signed(value: float) -> str:
        return ("+" if value > 0 else "\u2212") + f"{abs(value) * 100:.1f}"

    table = cli("report", "-c", "welcome", "--project", project, "--now", now)
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())
    assert "A/B variants on the goal" in text
    assert f"{k_b}/{n_b} ({k_b / n_b:.1%})" in text and f"{k_a}/{n_a} ({k_a / n_a:.1%})" in text
    assert f"{signed(difference)} pp" in text
    assert f"{signed(low)} to {signed(high)} pp" in text

    plain = cli("report", "-c", "welcome", "--project", project, "--now", now,
                "--format", "csv", "--plain")
    rows = [row for row in csv.DictReader(io.StringIO(plain.stdout))
            if row["record"] == "variant"]
    assert [(r["variant"], r["variant_n"], r["variant_converted"], r["reference"]) for r in rows] \
        == [("a", str(n_a), str(k_a), "a"), ("b", str(n_b), str(k_b), "a")]
    assert rows[1]["uplift_pp"] == f"{difference * 100:.1f}"
    assert rows[1]["p_value"] == f"{p:.4f}" and rows[1]["outcome"] == outcome

    page = project / "report.html"
    assert cli("report", "-c", "welcome", "--project", project, "--now", now, "--lang", "nl",
               "--out", page).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert "A/B-varianten op het doel" in html
    assert "de referentie: de andere varianten worden ermee vergeleken" in html
