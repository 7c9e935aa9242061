"""A campaign repository is untrusted: it cannot read, leak, inject or exhaust anything.

The pull-request cases that need more than the bad-input corpus can express: symbolic links,
measured time and memory, a browser, a terminal, file permissions. The single-file cases
(template payloads, YAML and JSON bombs, hostile file names) are in tests/e2e/bad_inputs/security/.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import stat
import subprocess
import time
import tracemalloc
from email.message import Message
from pathlib import Path

import pytest

from ldmail.content.render import Renderer
from ldmail.errors import JsonLimit, Problem, RenderError
from ldmail.measurement.events import load_json
from ldmail.project.config import load_project
from ldmail.project.models import Step
from ldmail.project.yamlfile import load_yaml
from ldmail.sandbox.budget import MAX_STRING
from ldmail.sandbox.hygiene import csv_cell, excerpt, visible

from .browser import chromium_command
from .conftest import Cli

DAY1 = "2026-12-01T10:00+01:00"
CANARY = "CANARY-7f3a9c-not-for-mail"


def _outputs(root: Path) -> bytes:
    """Every byte ldmail wrote into the project: outbox, previews, ledger."""
    found = b""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found += path.read_bytes()
    return found


@pytest.fixture
def linked(project: Path, tmp_path: Path) -> Path:
    """A project whose templates link to the environment, /etc/passwd and a canary file."""
    canary = tmp_path / "outside" / "canary.txt"
    canary.parent.mkdir()
    canary.write_text(CANARY + "\n", encoding="utf-8")
    en = project / "templates" / "en"
    (en / "env.md").symlink_to("/proc/self/environ")
    (en / "passwd.md").symlink_to("/etc/passwd")
    (en / "canary.md").symlink_to(canary)
    hello = en / "welcome" / "hello.md"
    hello.write_text(hello.read_text("utf-8").replace(
        "{% block body %}", "{% block body %}{% include 'en/env.md' %}{% include 'en/passwd.md' "
        "%}{% include 'en/canary.md' %}"), encoding="utf-8")
    # A step template that is itself a link out of the project.
    (en / "welcome" / "stolen.md").symlink_to(canary)
    campaign = project / "campaigns" / "welcome.yaml"
    campaign.write_text(campaign.read_text("utf-8").replace(
        "template: welcome/first-course", "template: welcome/stolen"), encoding="utf-8")
    return project


def _secrets() -> list[bytes]:
    environ = Path("/proc/self/environ").read_bytes()
    return [CANARY.encode(), b"root:x:0:0", environ[:60]]


def test_links_out_of_the_project_are_validate_errors(linked: Path, cli: Cli) -> None:
    result = cli("validate", "--project", linked, "--now", DAY1)
    assert result.exit_code == 1
    for link, target in (("templates/en/env.md", "/proc/self/environ"),
                         ("templates/en/passwd.md", "/etc/passwd"),
                         ("templates/en/canary.md", "canary.txt"),
                         ("templates/en/welcome/stolen.md", "canary.txt")):
        assert re.search(rf"^{re.escape(link)}: is a symbolic link to \S*{re.escape(target)}, "
                         r"outside templates/", result.stdout, re.MULTILINE), result.stdout


def test_send_preview_and_gallery_never_hold_a_linked_file(linked: Path, cli: Cli,
                                                           tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    runs = [cli("send", "--project", linked, "--now", DAY1),
            cli("preview", "-c", "welcome", "--html", "--project", linked, "--now", DAY1),
            cli("preview", "--out", gallery, "--project", linked, "--now", DAY1)]
    assert [run.exit_code for run in runs] == [1, 1, 1]
    written = _outputs(linked) + (_outputs(gallery) if gallery.exists() else b"")
    printed = "".join(run.output for run in runs).encode()
    for secret in _secrets():
        assert secret not in written and secret not in printed
    assert "templates/en/env.md: is a symbolic link to /proc/self/environ" in runs[0].stderr


def test_the_renderer_refuses_links_even_when_validation_is_skipped(linked: Path) -> None:
    """Defence in depth: with the project's problems ignored, rendering still refuses."""
    project = load_project(linked, strict=False)
    campaign = project.campaign("welcome")
    renderer = Renderer(project)
    person = {"first_name": "Ann", "last_name": "Smith", "email": "ann@example.org"}
    for step in campaign.steps:
        with pytest.raises(RenderError) as caught:
            renderer.render("welcome", campaign, step, person, None, None, "en")
        assert caught.value.security
        assert "outside templates/" in caught.value.reason
        for secret in _secrets():
            assert secret.decode(errors="replace") not in str(caught.value)


def test_a_linked_folder_of_templates_is_refused(project: Path, tmp_path: Path,
                                                 cli: Cli) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(project / "templates", elsewhere)
    shutil.rmtree(project / "templates")
    (project / "templates").symlink_to(elsewhere)
    result = cli("validate", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert f"templates: is a symbolic link to {elsewhere}, outside templates/" in result.stdout


def test_a_data_folder_outside_is_allowed_only_by_the_operator(project: Path, tmp_path: Path,
                                                               cli: Cli,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    share = tmp_path / "share"
    share.mkdir()
    shutil.move(project / "people.csv", share / "hr.csv")
    audiences = project / "audiences.yaml"
    audiences.write_text(audiences.read_text("utf-8").replace(
        "source: people.csv", f"source: {share / 'hr.csv'}"), encoding="utf-8")
    refused = cli("audience", "--project", project, "--now", DAY1)
    assert refused.exit_code == 1
    assert f"people.source: points to {share / 'hr.csv'}, outside the project" in refused.stderr
    monkeypatch.setenv("LDMAIL_DATA_DIRS", str(share))
    allowed = cli("audience", "--project", project, "--now", DAY1)
    assert allowed.exit_code == 0, allowed.output
    assert "people loaded" in allowed.stdout


def _header_lines(message: Message, raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def test_every_header_line_is_a_field_or_a_fold(project: Path, cli: Cli) -> None:
    people = project / "people.csv"
    people.write_text(people.read_text("utf-8").replace(
        "Ann;de Vries", "Ann " + "Zoë " * 40 + ";de Vries").replace(
        "Bob;Smith", "B" * 1500 + ";Smith"), encoding="utf-8")  # a word no fold can split
    result = cli("send", "--project", project, "--now", DAY1)
    assert result.exit_code == 0, result.output
    files = sorted((project / ".ldmail" / "outbox").glob("*.eml"))
    assert files
    for path in files:
        raw = path.read_bytes()
        message = email.message_from_bytes(raw)
        for line in _header_lines(message, raw):
            assert re.match(rb"[A-Za-z][A-Za-z0-9-]*: |[ \t]", line), (path.name, line)
            assert b"\r" not in line and b"\n" not in line and len(line) <= 998
        assert message["List-Id"].startswith("welcome <welcome.")
        assert message["X-Ldmail-Campaign"] == "welcome"


def _alias_bomb(levels: int) -> str:
    text = 'vars:\n  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[:levels - 1]:
        text += f"  {name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


@pytest.mark.parametrize(("name", "text", "line", "reason"), [
    ("alias bomb, 7 levels", _alias_bomb(7), 6, "more than 10,000 values once aliases"),
    ("alias bomb, 9 levels", _alias_bomb(9), 6, "more than 10,000 values once aliases"),
    ("2,000 deep", "x: " + "[" * 2000 + "]" * 2000 + "\n", 1, "nested more than 50 levels"),
    ("300 deep, block style", "".join(" " * i + "k:\n" for i in range(300)), 51,
     "nested more than 50 levels"),
    ("5,000 digits", "holdout: " + "9" * 5000 + "\n", 1, "a number of 5,000 digits"),
], ids=["alias-bomb-7", "alias-bomb-9", "deep-flow", "deep-block", "long-number"])
def test_hostile_yaml_ends_fast_small_and_located(tmp_path: Path, name: str, text: str,
                                                  line: int, reason: str) -> None:
    path = tmp_path / "ldmail.yaml"
    path.write_text(text, encoding="utf-8")
    tracemalloc.start()
    started = time.perf_counter()
    problem = load_yaml(path, "ldmail.yaml")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert not hasattr(problem, "data"), name
    assert isinstance(problem, Problem)
    assert (problem.line, reason in problem.message) == (line, True), problem
    # Generous: an alias bomb that is not stopped runs for hours and fills the memory.
    assert elapsed < 20, f"{name}: {elapsed:.2f} s"
    assert peak < 200 * 1024 * 1024, f"{name}: {peak / 2**20:.0f} MB"


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("[" * 2000 + "]" * 2000, 1, "nested more than 64 levels deep"),
    ('[\n\n{"verb": ' + "9" * 5000 + "}]", 3, "a number of 5,000 digits"),
], ids=["deep", "long-number"])
def test_hostile_json_ends_fast_small_and_located(text: str, line: int, reason: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(JsonLimit) as caught:
        load_json(text)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (caught.value.line, reason in caught.value.reason) == (line, True), caught.value
    assert elapsed < 20 and peak < 200 * 1024 * 1024  # unbounded: hours, gigabytes


# One step per payload, so validate meets all of them in one run.
PAYLOADS = {
    "loops": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "quiet-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                   "{% endfor %}",
    "macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
             "{{ f(40) }}",
    "power": "{% set x = 7**3000 %}{% for i in range(22) %}{% set x = x*x %}{% endfor %}{{ x }}",
    "doubling": "{% set s = 'x'*1000000 %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s }}",
    "center": "{{ 'x'|center(10**10) }}",
    "format": "{{ '%0999999999d'|format(1) }}",
    "indent": "{{ 'a'|indent(10**9, true) }}",
    "method": "{{ 'x'.ljust(10**10) }}",
    "percent": "{{ '%0999999999d' % 1 }}",
    "join": "{{ range(100000)|join('y' * 100000) }}",
    "captured": "{% set s %}{% for a in 'x'*1000000 %}{% for b in 'x'*1000000 %}abc{% endfor %}"
                "{% endfor %}{% endset %}{{ s|length }}",
    # Values built by C code in one call, checked before they are built (a reviewer's finds).
    "bytes": "{{ ('y'.encode() * 1200000000)|length }}",
    "nested-width": "{{ ('{0:>{1}}'.format('x', '1200000000'))|length }}",
    "expandtabs": "{{ (('\t'*1200).expandtabs(999999))|length }}",
    "repeated-field": "{{ (('{0}'*200).format('y'*999999))|length }}",
    "repeated-percent": "{{ (('%(a)s'*200) % {'a':'y'*999999})|length }}",
    "translate": "{{ (('x'*200).translate({120:'y'*999999}))|length }}",
    "indent-lines": "{{ (('a\n'*1200)|indent(999999))|length }}",
    "replace-list": "{{ ([1]*200)|replace(',', 'y'*999999) }}",
    "join-attribute": "{{ ([{'a':'y'*999999}]*1200)|join(attribute='a')|length }}",
    "tojson": "{{ (['y'*999999]*200)|tojson|length }}",
    "list-output": "{{ ['y'*999999]*300 }}",
    "map-center": "{{ (range(1200)|map('center', 999999)|list)|length }}",
    "list-compare": "{% set a='y'*999999 %}{% set l1=[a]*1000 %}{{ l1 in [l1]*1200 }}",
    "markdown": "{{ '![' * 500000 }}",
    "nested-divs": "{{ ('<div>' * 15000)|safe }}",
    "many-elements": "{{ ('<p>x</p>' * 30000)|safe }}",
}


def test_every_template_payload_ends_within_its_budget(project: Path, cli: Cli) -> None:
    campaign = project / "campaigns" / "welcome.yaml"
    steps = "".join(f"  - {{id: {name}, after: {i + 4}d, template: attack/{name}}}\n"
                    for i, name in enumerate(PAYLOADS))
    campaign.write_text(campaign.read_text("utf-8") + steps, encoding="utf-8")
    hello = (project / "templates" / "en" / "welcome" / "hello.md").read_text("utf-8")
    for language in ("en", "nl"):
        folder = project / "templates" / language / "attack"
        folder.mkdir()
        for name, payload in PAYLOADS.items():
            (folder / f"{name}.md").write_text(
                hello.replace("{% block body %}", "{% block body %}" + payload), "utf-8")
    started = time.perf_counter()
    result = cli("validate", "--project", project, "--now", DAY1)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 1
    for language in ("en", "nl"):
        for name in PAYLOADS:
            assert re.search(rf"^templates/{language}/attack/{name}\.md(:\d+)?: "
                             r"(loops more than|took longer than 2 s|builds (a value|a list|more)|"
                             r"the number \d+ is too large|a format (width|field)|multiplying "
                             r"these numbers|repeating|\S+ would build more|'%' formatting|"
                             r"the message has)", result.stdout, re.MULTILINE), \
                (name, result.stdout)
    # Every payload is held to its budget; without them this runs for hours, so a busy
    # machine's minutes are no failure.
    assert elapsed < 600, f"validate took {elapsed:.1f} s"


def test_an_expression_is_held_to_the_budget_too(project: Path, cli: Cli) -> None:
    audiences = project / "audiences.yaml"
    text = audiences.read_text("utf-8")
    match = re.search(r'match: "([^"]*)"', text)
    assert match
    audiences.write_text(text.replace(match.group(0), 'match: "(\'x\' * 1000000) ~ (\'x\' * '
                                      '1000000) != \'\'"', 1), encoding="utf-8")
    result = cli("validate", "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "builds a value of 2,000,000 characters" in result.output
    assert "Traceback" not in result.output


def test_the_render_budget_is_the_operators_to_set(project: Path, cli: Cli,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    hello = project / "templates" / "en" / "welcome" / "hello.md"
    hello.write_text(hello.read_text("utf-8").replace(
        "{% block body %}", "{% block body %}{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}"
        "{% endif %}{% endmacro %}{{ f(40) }}"), encoding="utf-8")
    monkeypatch.setenv("LDMAIL_RENDER_SECONDS", "0.3")
    started = time.perf_counter()
    result = cli("validate", "--project", project, "--now", DAY1)
    assert "templates/en/welcome/hello.md:4: took longer than 0.3 s" in result.stdout
    assert time.perf_counter() - started < 10


def test_a_normal_template_keeps_its_loops(project: Path) -> None:
    """The budget is far above what an e-mail needs: a 1,000-item loop renders."""
    hello = project / "templates" / "en" / "welcome" / "hello.md"
    hello.write_text(hello.read_text("utf-8").replace(
        "{% block body %}", "{% block body %}{% for i in range(1000) %}{{ i }} {% endfor %}"),
        encoding="utf-8")
    project_model = load_project(project)
    campaign = project_model.campaign("welcome")
    step: Step = campaign.steps[0]
    rendered = Renderer(project_model).render(
        "welcome", campaign, step, {"first_name": "Ann", "email": "a@example.org"}, None, None,
        "en")
    assert "998 999" in rendered.text
    assert len("x" * MAX_STRING) == MAX_STRING


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_gallery_runs_no_injected_script(project: Path, cli: Cli, tmp_path: Path) -> None:
    attack = ('<img src=x onerror="document.title=/pwned/.source">'
              "<script>document.title=/pwned/.source</script>")
    campaign = project / "campaigns" / "welcome.yaml"
    campaign.write_text(campaign.read_text("utf-8").replace(
        "title: Welcome to the learning platform", f"title: '{attack}'"), encoding="utf-8")
    settings = project / "ldmail.yaml"
    settings.write_text(settings.read_text("utf-8").replace(
        "organisation: Example Organisation", f"organisation: '{attack}'"), encoding="utf-8")
    people = project / "people.csv"
    people.write_text(people.read_text("utf-8").replace("Ann;de Vries", f"{attack};de Vries"),
                      encoding="utf-8")
    gallery = tmp_path / "gallery"
    result = cli("preview", "--out", gallery, "--project", project, "--now", DAY1)
    assert result.exit_code == 0, result.output
    command = chromium_command(tmp_path)
    for page in ["index.html", *sorted(p.name for p in gallery.glob("welcome--*.html"))[:2]]:
        html = (gallery / page).read_text("utf-8")
        assert "<script>" not in html and "<img src=x" not in html
        dom = subprocess.run([*command, "--dump-dom", (gallery / page).resolve().as_uri()],
                             capture_output=True, text=True, timeout=60, check=False)
        assert dom.returncode == 0, dom.stderr[-2000:]
        title = re.search(r"<title>(.*?)</title>", dom.stdout, re.DOTALL)
        assert title and "pwned" != title.group(1).strip()
        assert "&lt;script&gt;" in dom.stdout  # shown as text, not run


def test_control_characters_from_data_are_shown_not_obeyed(project: Path, cli: Cli) -> None:
    people = project / "people.csv"
    hostile = "Ann\x1b]0;pwned\x07\x1b[2J\u202e"
    people.write_text(people.read_text("utf-8").replace("Ann;de Vries", f'"{hostile}";de Vries')
                      .replace("bob.smith@example.org", "bob\x1b[31m@example.org"),
                      encoding="utf-8")
    for args in (("audience",),
                 ("preview", "-c", "welcome", "--person", "ann.devries@example.org")):
        result = cli(*args, "--project", project, "--now", DAY1)
        assert "\x1b" not in result.output and "\x07" not in result.output and \
            "\u202e" not in result.output, (args, result.output)
    shown = cli("preview", "-c", "welcome", "--person", "ann.devries@example.org", "--project",
                project, "--now", DAY1)
    assert "Ann\\x1b]0;pwned\\x07\\x1b[2J\\u202e" in shown.stdout
    rejected = cli("audience", "--project", project, "--now", DAY1)
    assert "bob\\x1b[31m@example.org" in rejected.stdout


def test_hygiene_helpers() -> None:
    assert visible("a\x1b[2Jb\tc\nd\x9b\u2066") == "a\\x1b[2Jb\tc\nd\\x9b\\u2066"
    assert excerpt("x\r\n" * 40, limit=10) == "'x\\r\\nx\\r\\…'"
    assert [csv_cell(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "plain", 3, -1.5)] == \
        ["'=1+1", "'+1", "'-2", "'@SUM(A1)", "plain", 3, -1.5]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_with_personal_data_are_owner_only(project: Path, cli: Cli, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        preview = cli("preview", "-c", "welcome", "--html", "--project", project, "--now", DAY1)
        gallery = tmp_path / "gallery"
        shown = cli("preview", "--out", gallery, "--project", project, "--now", DAY1)
        cli("send", "--project", project, "--now", DAY1)
        report = cli("report", "--format", "html", "--out", tmp_path / "report.html",
                     "--project", project, "--now", DAY1)
    finally:
        os.umask(old)
    assert preview.exit_code == shown.exit_code == report.exit_code == 0
    assert _mode(project / ".ldmail") == 0o700
    assert _mode(project / ".ldmail" / "preview") == 0o700
    files = [*(project / ".ldmail" / "preview").iterdir(), *gallery.rglob("*.html"),
             tmp_path / "report.html"]
    assert len(files) > 10
    assert {_mode(path) for path in files} == {0o600}
    assert _mode(gallery) == _mode(gallery / "mail") == 0o700


def test_no_write_follows_a_link_or_a_path_from_the_repository(project: Path, cli: Cli,
                                                               tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    preview = project / ".ldmail" / "preview"
    preview.mkdir(parents=True)
    (preview / "welcome-hello-compelled-en.html").symlink_to(victim)
    shown = cli("preview", "-c", "welcome", "--step", "hello", "--persona", "compelled", "--lang",
                "en", "--html", "--project", project, "--now", DAY1)
    assert shown.exit_code == 1 and "is a symbolic link; remove it" in shown.stderr
    (project / ".ldmail" / "ledger.db.lock").symlink_to(victim)
    sent = cli("send", "--project", project, "--now", DAY1)
    assert sent.exit_code == 1 and "ledger.db.lock is a symbolic link" in sent.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    # A language from the export names no path: it is one of the configured languages or the
    # default, for templates and for preview file names alike.
    people = project / "people.csv"
    people.write_text(people.read_text("utf-8").replace(
        "bob.smith@example.org;Bob;Smith;EN", f"bob.smith@example.org;Bob;Smith;x/../../"
        f"../../../..{tmp_path}/pwn"), encoding="utf-8")
    (project / ".ldmail" / "ledger.db.lock").unlink()
    (preview / "welcome-hello-compelled-en.html").unlink()
    person = cli("preview", "-c", "welcome", "--person", "bob.smith@example.org", "--step", "hello",
                 "--html", "--project", project, "--now", DAY1)
    assert not list(tmp_path.glob("pwn*"))
    assert all(p.parent == preview for p in preview.rglob("*.html")), person.output


def test_the_gallery_frames_run_no_script(project: Path, cli: Cli, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    assert cli("preview", "--out", gallery, "--project", project, "--now", DAY1).exit_code == 0
    for page in gallery.glob("*--*.html"):
        frames = re.findall(r"<iframe[^>]*>", page.read_text("utf-8"))
        assert frames and all(" sandbox" in frame for frame in frames)


def test_the_gallery_never_empties_a_folder_that_is_not_a_gallery(project: Path,
                                                                  cli: Cli) -> None:
    result = cli("preview", "--out", project, "--project", project, "--now", DAY1)
    assert result.exit_code == 1
    assert "holds files that are not a preview gallery" in result.stderr
    assert (project / "campaigns" / "welcome.yaml").is_file()
