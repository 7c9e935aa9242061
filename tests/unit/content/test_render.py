"""content.render promises: a step's template becomes subject, preheader, WIIFM, HTML and text
inside Jinja's sandbox; people's values stay text (never Markdown links); links get UTM tags;
a call to action becomes a button; a language without its own template is a located error (or
the campaign's fallback); every failure is one RenderError naming the file and line; and the
memos that share work between readers never mix one reader's name or token into another's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ldmail.content.render import (
    MAX_NESTING,
    Renderer,
    buttons,
    check_inlinable,
    markdown_literal,
    tag_links,
)
from ldmail.errors import MissingTranslation, RenderError
from ldmail.project.config import Project, load_project

TOKEN_A = "0123456789abcdef0123456789abcdef"
TOKEN_B = "fedcba9876543210fedcba9876543210"
ANN = {"email": "ann@example.org", "first_name": "Ann", "last_name": "de Vries"}


def render(project: Project, person: dict[str, Any] = ANN, language: str = "en",
           renderer: Renderer | None = None, token: str | None = None, step: int = 0) -> Any:
    campaign = project.campaign("welcome")
    persona = project.audiences.personas["newcomer"]
    url = f"https://unsubscribe.example.org/?token={token}" if token else "#"
    return (renderer or Renderer(project)).render(
        "welcome", campaign, campaign.steps[step], person, "newcomer", persona, language,
        unsubscribe_url=url, token=token)


def write_template(scaffold: Path, body: str, language: str = "en") -> None:
    (scaffold / "templates" / language / "welcome" / "hello.md").write_text(body,
                                                                           encoding="utf-8")


BLOCKS = ("{% block subject %}Hi{% endblock %}{% block preheader %}p{% endblock %}"
          "{% block wiifm %}w{% endblock %}")


def test_a_step_renders_to_every_part_of_a_message(loaded: Project) -> None:
    rendered = render(loaded)
    assert rendered.subject == "Ann, your learning platform is open"
    assert rendered.preheader == "Ten minutes is enough to find your first course."
    assert rendered.wiifm.startswith("Find your feet faster")
    assert rendered.template_file == "templates/en/welcome/hello.md"
    assert rendered.language == "en"
    assert "<p>Hi Ann,</p>" in rendered.html
    assert rendered.text.startswith(rendered.wiifm) and rendered.text.endswith("\n")


def test_links_carry_utm_tags_in_the_html_and_the_text_part(loaded: Project) -> None:
    rendered = render(loaded)
    tagged = ("https://learning.example.org/?utm_source=ldmail&utm_medium=email"
              "&utm_campaign=welcome&utm_content=hello")
    assert f"open the platform <{tagged}>" in rendered.text
    assert tagged.replace("&", "&amp;") in rendered.html


def test_the_unsubscribe_link_ends_the_text_part_in_the_readers_language(
        loaded: Project) -> None:
    rendered = render(loaded, language="nl", token=TOKEN_A)
    assert rendered.language == "nl"
    assert rendered.subject == "Ann, je leerplatform staat voor je klaar"
    assert rendered.text.endswith(
        f"-- \nAfmelden voor deze leer-e-mails: "
        f"https://unsubscribe.example.org/?token={TOKEN_A}\n")
    assert f'href="https://unsubscribe.example.org/?token={TOKEN_A}"' in rendered.html


def test_a_language_the_project_does_not_list_gets_the_default_language(
        loaded: Project) -> None:
    assert render(loaded, language="fr").template_file == "templates/en/welcome/hello.md"


def test_a_markdown_link_in_a_persons_name_stays_text(loaded: Project) -> None:
    person = {**ANN, "first_name": "[Verify](https://evil.example)"}
    rendered = render(loaded, person)
    assert 'href="https://evil.example' not in rendered.html
    assert "[Verify](https://evil.example)" in rendered.html


def test_each_reader_gets_their_own_name_and_token_from_a_shared_renderer(
        loaded: Project) -> None:
    renderer = Renderer(loaded)
    ann = render(loaded, ANN, renderer=renderer, token=TOKEN_A)
    bob = render(loaded, {**ANN, "first_name": "Bob", "last_name": "Smith"},
                 renderer=renderer, token=TOKEN_B)
    fresh = render(loaded, {**ANN, "first_name": "Bob", "last_name": "Smith"}, token=TOKEN_B)
    assert "Hi Bob," in bob.text and "Ann" not in bob.html and TOKEN_A not in bob.html
    assert TOKEN_B in bob.html and TOKEN_B not in ann.html
    assert bob == fresh  # memos and name placeholders change nothing in the result


def test_a_missing_translation_holds_the_message_unless_the_campaign_falls_back(
        scaffold: Path) -> None:
    (scaffold / "templates" / "nl" / "welcome" / "hello.md").unlink()
    with pytest.raises(MissingTranslation, match="no 'nl' translation of 'welcome/hello': "
                       "create templates/nl/welcome/hello.md"):
        render(load_project(scaffold), language="nl")
    campaign = scaffold / "campaigns" / "welcome.yaml"
    campaign.write_text(campaign.read_text(encoding="utf-8") + "fallback_language: en\n",
                        encoding="utf-8")
    rendered = render(load_project(scaffold), language="nl")
    assert (rendered.language, rendered.template_file) == ("en", "templates/en/welcome/hello.md")


def test_a_misspelt_attribute_is_located_and_the_close_name_suggested(scaffold: Path) -> None:
    write_template(scaffold, BLOCKS + "\n{% block body %}\nHello\n{{ person.frist_name }}\n"
                   "{% endblock %}\n")
    with pytest.raises(RenderError) as caught:
        render(load_project(scaffold))
    assert caught.value.file == "templates/en/welcome/hello.md"
    assert caught.value.line == 4  # the line that names it
    assert "person has no 'frist_name' (did you mean 'first_name'?)" in caught.value.reason


def test_a_template_without_a_required_block_says_which(scaffold: Path) -> None:
    write_template(scaffold, BLOCKS)
    with pytest.raises(RenderError, match=r"no \{% block body %\}; every template needs the "
                       "blocks subject, preheader, wiifm, body"):
        render(load_project(scaffold))


def test_reaching_into_python_internals_is_blocked_as_a_security_problem(
        scaffold: Path) -> None:
    write_template(scaffold, BLOCKS + "{% block body %}{{ person.__class__ }}{% endblock %}")
    with pytest.raises(RenderError, match="blocked by the sandbox") as caught:
        render(load_project(scaffold))
    assert caught.value.security


def test_including_a_template_that_does_not_exist_is_named(scaffold: Path) -> None:
    write_template(scaffold, BLOCKS + "{% block body %}{% include 'en/nope.md' %}{% endblock %}")
    with pytest.raises(RenderError, match="includes 'en/nope.md', which does not exist: "
                       "create templates/en/nope.md"):
        render(load_project(scaffold))


def test_a_bold_link_paragraph_becomes_a_button_in_the_brand_colour(loaded: Project) -> None:
    html = buttons('<p><strong><a href="https://x.example">Register</a></strong></p>', "#123456")
    assert html.startswith('<table role="presentation"')
    assert 'bgcolor="#123456"' in html and ">Register</a></td></tr></table>" in html
    plain = '<p>See <strong><a href="https://x.example">this</a></strong> too</p>'
    assert buttons(plain, "#123456") == plain


def test_utm_tags_are_added_only_to_absolute_links_without_their_own() -> None:
    params = {"utm_source": "ldmail", "utm_campaign": "welcome"}
    assert tag_links('<a href="https://a.example">', params) == \
        '<a href="https://a.example/?utm_source=ldmail&amp;utm_campaign=welcome">'
    own = '<a href="https://a.example/?utm_source=lms">'
    assert tag_links(own, params) == own
    assert tag_links('<a href="#top">', params) == '<a href="#top">'
    assert tag_links('<a href="https://a.example">', {}) == '<a href="https://a.example">'


def test_markdown_literal_escapes_what_markdown_would_read() -> None:
    assert markdown_literal("[a](b) *c* #1") == r"\[a\]\(b\) \*c\* \#1"
    assert markdown_literal("Ann & <Bob>") == "Ann & <Bob>"  # left to HTML autoescape


def test_html_nested_deeper_than_inlining_allows_is_refused() -> None:
    deep = "<div>" * (MAX_NESTING + 1) + "</div>" * (MAX_NESTING + 1)
    with pytest.raises(RenderError, match=f"nested {MAX_NESTING + 1} levels deep") as caught:
        check_inlinable(deep, "templates/en/x.md")
    assert caught.value.security
    check_inlinable("<div>" * MAX_NESTING + "<br>" * 50, "templates/en/x.md")
