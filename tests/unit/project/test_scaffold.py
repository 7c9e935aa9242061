"""ldmail.project.scaffold: `ldmail init` writes a small campaign repository that loads
without problems, with schemas generated for this version and a .gitignore that keeps
personal data out of git; it never overwrites a file, and says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ldmail.errors import LdmailError
from ldmail.project.config import load_project
from ldmail.project.scaffold import init_project
from ldmail.project.schema import schema_for


def test_a_new_folder_gets_a_project_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "a" / "new" / "repo"
    written = init_project(target)
    names = {path.relative_to(target).as_posix() for path in written}
    assert {"ldmail.yaml", "audiences.yaml", "people.csv", ".gitignore",
            "campaigns/welcome.yaml", "templates/en/welcome/hello.md",
            "templates/nl/welcome/hello.md", "schemas/campaign.schema.json"} <= names
    assert all(path.is_file() for path in written)
    assert not any("__pycache__" in name for name in names)
    assert load_project(target).problems == []


def test_the_schemas_are_generated_for_this_version(scaffold: Path) -> None:
    for name in ("campaign", "audiences", "settings"):
        text = (scaffold / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
        assert json.loads(text) == schema_for(name)


def test_the_gitignore_keeps_ldmails_private_files_out_of_git(scaffold: Path) -> None:
    ignored = [line for line in (scaffold / ".gitignore").read_text(encoding="utf-8")
               .splitlines() if line and not line.startswith("#")]
    assert {".ldmail/", "preview-gallery/", "reports/"} <= set(ignored)


def test_an_existing_empty_folder_or_one_with_other_files_is_fine(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    target.mkdir()
    (target / "README.md").write_text("ours", encoding="utf-8")
    init_project(target)
    assert (target / "README.md").read_text(encoding="utf-8") == "ours"
    assert (target / "ldmail.yaml").is_file()


def test_init_never_overwrites_a_file(scaffold: Path) -> None:
    settings = scaffold / "ldmail.yaml"
    settings.write_text("organisation: Ours\n", encoding="utf-8")
    (scaffold / "people.csv").unlink()
    with pytest.raises(LdmailError) as caught:
        init_project(scaffold)
    assert str(caught.value) == (
        f"{scaffold / '.gitignore'} already exists; 'ldmail init' never overwrites files: "
        "choose an empty or new folder")
    assert settings.read_text(encoding="utf-8") == "organisation: Ours\n"
    assert not (scaffold / "people.csv").exists()  # nothing was written at all


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    target.write_text("a file", encoding="utf-8")
    with pytest.raises(LdmailError) as caught:
        init_project(target)
    assert str(caught.value) == (f"{target} is a file; give a new or empty folder for the "
                                 "campaign repository")


def test_a_folder_that_cannot_be_made_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be", encoding="utf-8")
    with pytest.raises(LdmailError) as caught:
        init_project(blocker / "repo")
    message = str(caught.value)
    assert message.startswith(f"{blocker / 'repo'}: cannot create it (Not a directory)")
    assert message.endswith("; choose a folder you can write to")
