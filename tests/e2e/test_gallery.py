"""`ldmail preview --out`: an offline gallery of every message, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .browser import chromium_command, colours
from .conftest import Cli

MESSAGE = "platform-launch--kick-off--skill-builder--nl"


@pytest.fixture
def gallery(example: Path, cli: Cli, tmp_path: Path) -> Path:
    folder = tmp_path / "gallery"
    result = cli("preview", "--out", folder, "--project", example, "--now", "2026-12-01")
    assert result.exit_code == 0, result.output
    assert "Gallery of 146 messages written to" in result.stdout
    return folder


def test_gallery_covers_every_campaign_step_persona_language(gallery: Path) -> None:
    pages = sorted(p.name for p in gallery.glob("*--*.html"))
    assert len(pages) == 146
    assert len(list((gallery / "mail").glob("*.html"))) == 146
    index = (gallery / "index.html").read_text("utf-8")
    assert index.count("<tr><td>") == 146
    for campaign in ("platform-announcement", "platform-launch", "sales-advisor",
                     "sales-advisor-finish", "certification", "newcomer-onboarding",
                     "learning-habit", "course-completed"):
        assert f'id="{campaign}"' in index
    page = (gallery / f"{MESSAGE}.html").read_text("utf-8")
    assert 'src="mail/' in page and 'width="375"' in page and "<pre>" in page


def test_gallery_is_self_contained(gallery: Path) -> None:
    policy = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "style-src 'unsafe-inline'; img-src data:\">")
    for path in gallery.rglob("*.html"):
        text = path.read_text("utf-8")
        assert not re.search(r"<(script|link)\b", text), path
        if re.search(r"<img\b", text):  # the brand's logo: shown as its alt text, not loaded
            assert path.parent.name == "mail" and policy in text.split("</head>")[0], path
        assert not re.search(r'src="http:', text), path


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
@pytest.mark.parametrize(("page", "width", "expected"), [
    ("index.html", 1280, "campaign preview"),
    (f"{MESSAGE}.html", 1280, "De Learning Kitchen is open"),
    (f"mail/{MESSAGE}.html", 375, "Hallo Linda"),
])
def test_gallery_renders_in_headless_chromium(gallery: Path, tmp_path: Path, page: str,
                                              width: int, expected: str) -> None:
    url = (gallery / page).resolve().as_uri()
    shot = tmp_path / "shot.png"
    command = chromium_command(tmp_path)
    rendered = subprocess.run([*command, f"--screenshot={shot}", f"--window-size={width},1400",
                               url], capture_output=True, text=True, timeout=60, check=False)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    # The only console lines: the policy blocking the remote logo (see gallery.offline).
    assert [line for line in rendered.stderr.splitlines() if "CONSOLE" in line and
            "Content Security Policy" not in line] == []
    counts = colours(shot)
    assert len(counts) > 50 and max(counts.values()) < 0.95 * sum(counts.values())
    dom = subprocess.run([*command, "--dump-dom", url], capture_output=True, text=True,
                         timeout=60, check=False)
    assert expected in dom.stdout


def test_an_out_that_is_no_folder_or_full_is_one_line(project: Path, cli: Cli) -> None:
    for args in (["preview", "--out", "/dev/null"], ["preview", "--out", "/dev/full"],
                 ["report", "--format", "csv", "--out", "/dev/full"]):
        result = cli(*args, "--project", project)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, lines)
        assert lines[0].startswith((f"error {args[-1]}", f"error --out {args[-1]}")), lines
