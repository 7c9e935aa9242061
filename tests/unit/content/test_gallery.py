"""content.gallery promises a static folder of every campaign x step x persona x language: an
index, one page per message and the message itself under mail/, with relative links only and a
policy that loads nothing remote; every value from the repository is escaped; the folder is
private; an earlier gallery is replaced, but a folder holding anything else is never emptied."""

from __future__ import annotations

import re
import stat
from datetime import date
from pathlib import Path

import pytest

from ldmail.content.gallery import GalleryEntry, offline, write_gallery
from ldmail.errors import LdmailError
from ldmail.project.config import Project, load_project
from ldmail.project.scaffold import init_project

TODAY = date(2026, 12, 1)
CSP = "Content-Security-Policy"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[GalleryEntry]]:
    """One gallery of the fresh project, for the tests that only read it."""
    root = tmp_path_factory.mktemp("gallery") / "repo"
    init_project(root)
    out = root.parent / "gallery"
    return out, write_gallery(load_project(root), out, TODAY, sample_people=True)


def test_every_step_persona_and_language_gets_a_page_and_a_mail(
        gallery: tuple[Path, list[GalleryEntry]]) -> None:
    out, entries = gallery
    assert len(entries) == 2 * 4 * 2  # steps x personas x languages
    assert entries[0].page == "welcome--hello--broad-developer--en.html"
    assert entries[0].mail == "mail/welcome--hello--broad-developer--en.html"
    pages = sorted(path.name for path in out.glob("*.html"))
    assert len(pages) == 16 + 1 and "index.html" in pages
    assert len(list((out / "mail").glob("*.html"))) == 16
    # Sorted by campaign, then step time: every hello comes before any first-course.
    assert [entry.item.step.id for entry in entries] == ["hello"] * 8 + ["first-course"] * 8


def test_the_index_links_every_page_and_says_how_many_messages(
        gallery: tuple[Path, list[GalleryEntry]]) -> None:
    out, entries = gallery
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "16 messages · 1 campaigns" in index
    linked = set(re.findall(r'<a href="([^"]+)"', index))
    assert linked == {entry.page for entry in entries}
    assert "http" not in "".join(linked)


def test_a_message_page_frames_its_mail_sandboxed_and_shows_the_text_part(
        gallery: tuple[Path, list[GalleryEntry]]) -> None:
    out, (entry, *_) = gallery
    page = (out / entry.page).read_text(encoding="utf-8")
    assert page.count(f'<iframe src="{entry.mail}"') == 2  # desktop and mobile
    assert page.count(" sandbox></iframe>") == 2
    assert '<a style="color:#fff" href="index.html">' in page
    assert "<dt>Subject</dt><dd>" + entry.item.rendered.subject.replace("'", "&#x27;") in page
    assert entry.item.rendered.text.split("\n")[0] in page


def test_each_mail_loads_nothing_remote(gallery: tuple[Path, list[GalleryEntry]]) -> None:
    out, (entry, *_) = gallery
    mail = (out / entry.mail).read_text(encoding="utf-8")
    head = mail.index("<head>") + len("<head>")
    assert mail[head:].startswith(f'<meta http-equiv="{CSP}" content="default-src \'none\';')
    assert offline("<p>no head</p>").startswith(f'<meta http-equiv="{CSP}"')


def test_values_from_the_repository_are_escaped(scaffold: Path, tmp_path: Path) -> None:
    campaign = scaffold / "campaigns" / "welcome.yaml"
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "title: Welcome to the learning platform", "title: <script>alert(1)</script>"),
        encoding="utf-8")
    out = tmp_path / "gallery"
    entries = write_gallery(load_project(scaffold), out, TODAY, sample_people=True)
    for name in ["index.html", entries[0].page]:
        page = (out / name).read_text(encoding="utf-8")
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_gallery_is_readable_by_its_owner_only(
        gallery: tuple[Path, list[GalleryEntry]]) -> None:
    out, (entry, *_) = gallery
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "mail").stat().st_mode) == 0o700
    for path in (out / "index.html", out / entry.page, out / entry.mail):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_earlier_gallery_is_replaced(loaded: Project, tmp_path: Path) -> None:
    out = tmp_path / "gallery"
    (out / "mail").mkdir(parents=True)
    (out / "index.html").write_text("old", encoding="utf-8")
    (out / "mail" / "welcome--gone--x--en.html").write_text("old", encoding="utf-8")
    write_gallery(loaded, out, TODAY, sample_people=True)
    assert not (out / "mail" / "welcome--gone--x--en.html").exists()
    assert len(list((out / "mail").glob("*.html"))) == 16


def test_a_folder_holding_anything_else_is_never_emptied(
        loaded: Project, tmp_path: Path) -> None:
    with pytest.raises(LdmailError, match="holds files that are not a preview gallery; give an "
                       "empty or new folder for --out"):
        write_gallery(loaded, loaded.root, TODAY, sample_people=True)
    assert (loaded.root / "ldmail.yaml").is_file()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    with pytest.raises(LdmailError, match="not a folder"):
        write_gallery(loaded, a_file, TODAY, sample_people=True)
    assert a_file.read_text(encoding="utf-8") == "mine"


def test_an_empty_folder_is_used(loaded: Project, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert len(write_gallery(loaded, out, TODAY, sample_people=True)) == 16
    assert (out / "index.html").is_file()
