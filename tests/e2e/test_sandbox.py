"""Templates and persona expressions cannot run code, and person data is never code.

Every payload below is a known Jinja sandbox escape (or a way to stall a CI run). Each one is
armed: if it ever ran, it would create a canary file in tmp_path. Each must fail `validate`
with a clear "blocked by the sandbox" or "undefined" message, fail `preview` and `send
--dry-run` the same way, and leave no canary behind.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from .conftest import Cli

POPEN = "__import__('os').popen('touch {canary}').read()"
TEMPLATE_PAYLOADS = {
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "subclasses-popen": "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
                        "{% if c.__name__ == 'Popen' %}{{ c(['touch', '{canary}']) }}{% endif %}"
                        "{% endfor %}",
    "cycler-globals": "{{ cycler.__init__.__globals__.os.popen('touch {canary}').read() }}",
    "joiner-globals": "{{ joiner.__init__.__globals__.os.popen('touch {canary}').read() }}",
    "namespace-globals": "{{ namespace.__init__.__globals__.os.popen('touch {canary}').read() }}",
    "self-globals": "{{ self.__init__.__globals__.__builtins__." + POPEN + " }}",
    "self-context": "{{ self._TemplateReference__context.cycler.__init__.__globals__.os"
                    ".popen('touch {canary}').read() }}",
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('touch {canary}').read() }}",
    "request-application": "{{ request.application.__globals__.__builtins__." + POPEN + " }}",
    "config-items": "{{ config.items() }}",
    "config-class": "{{ config.__class__.__init__.__globals__['os'].popen('touch {canary}')"
                    ".read() }}",
    "url-for-globals": "{{ url_for.__globals__['__builtins__']." + POPEN + " }}",
    "set-class": "{% set x = ''.__class__ %}",
    "set-then-use": "{% set x = ''.__class__.__mro__[1].__subclasses__() %}{{ x }}",
    "attr-filter": "{{ ''|attr('__class__')|attr('__mro__') }}",
    "attr-filter-escaped": "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "attr-filter-joined": "{{ person|attr('_' ~ '_class_' ~ '_') }}",
    "format-string": "{{ '{0.__class__}'.format(person) }}",
    "format-globals": "{{ '{0.__class__.__init__.__globals__}'.format(person) }}",
    "format-map": "{{ '{p.__class__}'.format_map({'p': person}) }}",
    "format-built-key": "{{ ('{0.' ~ '_' ~ '_class__}').format(person) }}",
    "person-dict": "{{ person.__dict__ }}",
    "person-getitem": "{{ person['__class__'] }}",
    "range-self": "{{ range.__self__ }}",
    "range-globals": "{{ range.__init__.__globals__ }}",
    "vars-mutation": "{{ vars.update({'platform_url': 'https://evil.example'}) }}",
    "person-mutation": "{{ person.pop('email') }}",
    "power-of-power": "{{ 10 ** (10 ** 10) }}",
    "huge-string": "{{ 'x' * 10000000000 }}",
    "huge-range": "{% for i in range(10 ** 12) %}{% endfor %}",
}
BLOCKED = re.compile(r"blocked by the sandbox|is undefined|too large|Range too big|unsafe")

EXPRESSION_PAYLOADS = {
    "subclasses": "''.__class__.__mro__[1].__subclasses__() != []",
    "cycler-globals": "cycler.__init__.__globals__.os.popen('touch {canary}').read() == ''",
    "self-globals": "self.__init__.__globals__ != {}",
    "lipsum-globals": "lipsum.__globals__['os'].popen('touch {canary}').read() == ''",
    "request-application": "request.application != ''",
    "config-items": "config.items() != []",
    "attr-filter": "department|attr('__class__') != ''",
    "attr-filter-joined": "(department|attr('_' ~ '_class_' ~ '_')) != ''",
    "format-string": "'{0.__class__}'.format(department) != ''",
    "format-built-key": "('{0.' ~ '_' ~ '_class__}').format(department) != ''",
    "dict": "department.__dict__ != {}",
    "getitem": "department['__class__'] != ''",
    "range-self": "range.__self__ != 1",
    "namespace-globals": "namespace.__init__.__globals__.os.popen('touch {canary}').read() == ''",
    "power-of-power": "10 ** (10 ** 10) > 1",
}
EXPRESSION_BLOCKED = re.compile(r"blocked by the sandbox|unknown attribute|is undefined|unsafe|"
                                r"too large")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def armed(payload: str, canary: Path) -> str:
    return payload.replace("{canary}", str(canary))


def assert_blocked(result_output: str, exit_code: int, pattern: re.Pattern[str]) -> None:
    assert "Traceback" not in result_output, result_output
    assert exit_code == 1, result_output
    assert pattern.search(result_output), result_output


@pytest.mark.parametrize("name", list(TEMPLATE_PAYLOADS))
def test_template_payload_is_blocked(name: str, project: Path, cli: Cli, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    edit(project / "templates/en/welcome/hello.md", "The Learning Team",
         armed(TEMPLATE_PAYLOADS[name], canary))
    started = time.perf_counter()
    result = cli("validate", "--project", project)
    assert_blocked(result.output, result.exit_code, BLOCKED)
    assert re.search(r"^templates/en/welcome/hello\.md:\d+: ", result.stdout, re.MULTILINE), \
        result.stdout
    for args in (("preview", "-c", "welcome", "--step", "hello", "--lang", "en"),
                 ("send", "--dry-run", "--now", "2026-12-01T10:00+01:00")):
        run = cli(*args, "--project", project)
        assert "Traceback" not in run.output, run.output
        assert run.exit_code == 1, run.output
        assert BLOCKED.search(run.output), run.output
    assert time.perf_counter() - started < 10
    assert not canary.exists(), f"{name} ran code"


def test_payload_in_a_branch_no_sample_takes(project: Path, cli: Cli, tmp_path: Path) -> None:
    """Found in the source, not only when a sample person happens to render it."""
    canary = tmp_path / "canary"
    edit(project / "templates/nl/welcome/first-course.md", "Het Learning Team",
         "{% if person.department == 'Nobody works here' %}"
         + armed(TEMPLATE_PAYLOADS["cycler-globals"], canary) + "{% endif %}")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1, result.output
    assert "templates/nl/welcome/first-course.md:10: blocked by the sandbox: '__init__' " \
           "reaches into Python internals" in result.stdout
    assert not canary.exists()


def test_payload_outside_any_block(project: Path, cli: Cli, tmp_path: Path) -> None:
    """Text outside the four blocks is never rendered, but it is still checked."""
    canary = tmp_path / "canary"
    path = project / "templates/en/welcome/hello.md"
    path.write_text(armed(TEMPLATE_PAYLOADS["lipsum-globals"], canary) + "\n"
                    + path.read_text(encoding="utf-8"), encoding="utf-8")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert "templates/en/welcome/hello.md:1: blocked by the sandbox: '__globals__'" \
        in result.stdout
    assert not canary.exists()


@pytest.mark.parametrize("target", ["../ldmail.yaml", "/etc/passwd", "../../people.csv"])
def test_include_cannot_read_outside_templates(target: str, project: Path, cli: Cli) -> None:
    edit(project / "templates/en/welcome/hello.md", "The Learning Team",
         f"{{% include '{target}' %}}")
    result = cli("validate", "--project", project)
    assert result.exit_code == 1
    assert f"templates/en/welcome/hello.md:10: includes '{target}', outside templates/" \
        in result.stdout
    preview = cli("preview", "-c", "welcome", "--step", "hello", "--lang", "en",
                  "--project", project)
    assert preview.exit_code == 1
    assert "platform_url" not in preview.output and "root:" not in preview.output


@pytest.mark.parametrize("name", list(EXPRESSION_PAYLOADS))
def test_persona_expression_payload_is_blocked(name: str, project: Path, cli: Cli,
                                               tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    payload = armed(EXPRESSION_PAYLOADS[name], canary).replace('"', '\\"')
    edit(project / "audiences.yaml", 'match: "true"', f'match: "{payload}"')
    for command in ("validate", "audience"):
        result = cli(command, "--project", project)
        assert_blocked(result.output, result.exit_code, EXPRESSION_BLOCKED)
        assert re.search(r"audiences\.yaml:3\d: ", result.output), result.output
    send = cli("send", "--dry-run", "--now", "2026-12-01T10:00+01:00", "--project", project)
    assert send.exit_code == 1 and "Traceback" not in send.output, send.output
    assert not canary.exists(), f"{name} ran code"


@pytest.mark.parametrize("name", list(EXPRESSION_PAYLOADS))
def test_campaign_where_payload_is_blocked(name: str, project: Path, cli: Cli,
                                           tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    payload = armed(EXPRESSION_PAYLOADS[name], canary).replace('"', '\\"')
    edit(project / "campaigns/welcome.yaml", "starts: 2026-01-01",
         f'  where: "{payload}"\nstarts: 2026-01-01')
    result = cli("validate", "--project", project)
    assert_blocked(result.output, result.exit_code, EXPRESSION_BLOCKED)
    assert "campaigns/welcome.yaml:7: " in result.stdout, result.stdout
    send = cli("send", "--dry-run", "--now", "2026-12-01T10:00+01:00", "--project", project)
    assert send.exit_code == 1 and "Traceback" not in send.output, send.output
    assert not canary.exists(), f"{name} ran code"


def set_first_name(project: Path, email: str, value: str) -> None:
    people = project / "people.csv"
    lines = people.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        cells = line.split(";")
        if cells[0] == email:
            cells[1] = value
            lines[index] = ";".join(cells)
    people.write_text("\n".join(lines) + "\n", encoding="utf-8")


def preview_with_first_name(project: Path, cli: Cli, first_name: str) -> tuple[str, str]:
    """Bob's welcome rendered with `first_name` from the export: (HTML part, terminal text)."""
    set_first_name(project, "bob.smith@example.org", first_name)
    result = cli("preview", "-c", "welcome", "--person", "bob.smith@example.org", "--step", "hello",
                 "--html", "--project", project)
    assert result.exit_code == 0, result.output
    html = (project / ".ldmail/preview/welcome-hello-compelled-en.html").read_text("utf-8")
    return html, result.stdout


def test_script_in_person_data_is_escaped_in_html(project: Path, cli: Cli) -> None:
    html, _ = preview_with_first_name(project, cli, "<script>alert('x')</script><b>Bob</b>")
    assert "Hi &lt;script&gt;alert('x')&lt;/script&gt;&lt;b&gt;Bob&lt;/b&gt;," in html
    assert "<script" not in html.lower() and "<b>Bob" not in html


def test_markdown_in_person_data_stays_text(project: Path, cli: Cli) -> None:
    html, terminal = preview_with_first_name(project, cli, "[Verify](https://evil.example) *Bob*")
    assert "Hi [Verify](https://evil.example) *Bob*," in html
    assert "evil.example\"" not in html and "<em>Bob" not in html
    assert "Hi [Verify](https://evil.example) *Bob*," in terminal  # text part alike


def test_jinja_in_person_data_is_text_not_code(project: Path, cli: Cli, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    set_first_name(project, "bob.smith@example.org", "{{ 7*7 }}")
    set_first_name(project, "george.brown@example.org",
                   armed("{{ cycler.__init__.__globals__.os.popen('touch {canary}').read() }}",
                         canary))
    result = cli("preview", "-c", "welcome", "--person", "bob.smith@example.org", "--step", "hello",
                 "--html", "--project", project)
    assert result.exit_code == 0, result.output
    assert "Subject:   {{ 7*7 }}, your learning platform is open" in result.stdout
    assert "Hi {{ 7*7 }}," in result.stdout
    # Not evaluated anywhere (the output also names the preview's path, which may hold "49").
    assert "Hi 49" not in result.stdout and "49, your learning" not in result.stdout
    html = (project / ".ldmail/preview/welcome-hello-compelled-en.html").read_text("utf-8")
    assert "{{ 7*7 }}" in html and "49" not in html
    sent = cli("send", "--now", "2026-12-01T10:00+01:00", "--project", project)
    assert sent.exit_code == 0, sent.output
    messages = [p.read_text("utf-8") for p in (project / ".ldmail/outbox").glob("*.eml")]
    assert any("{{ 7*7 }}" in m for m in messages)
    assert not canary.exists()


def test_line_break_in_person_data_cannot_inject_a_header(project: Path, cli: Cli) -> None:
    people = project / "people.csv"
    text = people.read_text(encoding="utf-8").replace(
        "bob.smith@example.org;Bob;", 'bob.smith@example.org;"Bob\r\nBcc: spy@evil.example";')
    people.write_text(text, encoding="utf-8")
    result = cli("send", "--now", "2026-12-01T10:00+01:00", "--project", project)
    assert result.exit_code == 1, result.output
    assert "held: welcome/hello to bob.smith@example.org: the To header value contains a " \
           "line break" in result.output
    assert "Traceback" not in result.output
    outbox = list((project / ".ldmail/outbox").glob("*.eml"))
    assert outbox, "the other people are still mailed"
    for path in outbox:
        data = path.read_bytes().lower()
        assert b"spy@evil.example" not in data
        assert b"\nbcc:" not in data
