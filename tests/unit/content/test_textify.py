"""content.textify promises a readable text/plain part from HTML: paragraphs apart, list
items as dashes, links as `label <url>` (once when the label is the address), bold as *stars*,
and nothing of style, script or head."""

from __future__ import annotations

from ldmail.content.textify import html_to_text


def test_paragraphs_are_separated_by_one_blank_line() -> None:
    html = "<p>One\n   line</p>\n\n\n<div>Two</div><h2>Three</h2>"
    assert html_to_text(html) == "One line\n\nTwo\n\nThree"


def test_a_link_shows_its_label_and_its_address() -> None:
    assert html_to_text('<p>Go to <a href="https://x.example/a">the course</a>.</p>') == \
        "Go to the course <https://x.example/a>."


def test_a_link_whose_label_is_its_address_or_a_mailto_shows_it_once() -> None:
    assert html_to_text('<a href="https://x.example">https://x.example</a>') == \
        "https://x.example"
    assert html_to_text('<a href="mailto:ann@example.org">ann@example.org</a>') == \
        "ann@example.org"
    assert html_to_text('<a href="#top">back to top</a>') == "back to top"


def test_lists_become_dashed_items_indented_by_depth() -> None:
    html = "<ul><li>one</li><li>two<ul><li>deep</li></ul></li></ul>"
    assert html_to_text(html) == "- one\n- two\n\n- deep"


def test_bold_is_starred_and_a_rule_is_dashes() -> None:
    assert html_to_text("<p><strong>Now</strong> or <b>never</b></p><hr><p>end</p>") == \
        "*Now* or *never*\n\n----\n\nend"


def test_style_script_and_head_are_left_out_and_entities_decoded() -> None:
    html = ("<html><head><title>T</title><style>p {color: red}</style></head><body>"
            "<script>alert(1)</script><p>Fish &amp; chips&nbsp;&lt;3</p></body></html>")
    assert html_to_text(html) == "Fish & chips <3"


def test_line_breaks_are_kept_and_no_line_has_edge_spaces() -> None:
    assert html_to_text("<p>  first <br>  second  </p>") == "first\nsecond"
