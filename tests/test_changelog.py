"""CHANGELOG.md keeps the Keep a Changelog 1.1.0 shape, and the version is set once.

Version headings are `## [Unreleased]` first, then released versions as `## [x.y.z]` (an
optional ` - YYYY-MM-DD` after it), newest first. Under each, only the six standard subsections,
in the standard order, none empty. Every version heading has a link reference at the bottom.
pyproject.toml holds the version; the installed package reports the same one, and no released
heading is newer than it.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHANGELOG = REPO / "CHANGELOG.md"
PYPROJECT = REPO / "pyproject.toml"

UNRELEASED = "Unreleased"
SECTIONS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")

# semver.org's own pattern, anchored.
SEMVER = re.compile(
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
VERSION_HEADING = re.compile(r"## \[(?P<label>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?")
LINK_REFERENCE = re.compile(r"\[(?P<label>[^\]]+)\]: (?P<url>\S+)")

PrereleasePart = tuple[int, int | str]
VersionKey = tuple[int, int, int, int, tuple[PrereleasePart, ...]]


@dataclass
class Version:
    """One `## [...]` heading and what stands under it."""

    label: str
    line: int
    sections: list[tuple[str, int]] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)


def _lines() -> list[str]:
    return CHANGELOG.read_text(encoding="utf-8").splitlines()


def _versions() -> list[Version]:
    versions: list[Version] = []
    section: str | None = None
    for number, line in enumerate(_lines(), start=1):
        if line.startswith("## "):
            match = VERSION_HEADING.fullmatch(line)
            assert match, f"CHANGELOG.md:{number}: not a version heading: {line!r}"
            versions.append(Version(match["label"], number))
            section = None
        elif line.startswith("### "):
            assert versions, f"CHANGELOG.md:{number}: a subsection before any version"
            section = line[4:].strip()
            versions[-1].sections.append((section, number))
            versions[-1].entries[section] = 0
        elif line.startswith("#"):
            assert line.startswith("# ") and number == 1, (
                f"CHANGELOG.md:{number}: only the title is a level-1 heading, and no deeper "
                f"heading than ###: {line!r}")
        elif section is not None and line.strip() and not LINK_REFERENCE.fullmatch(line):
            versions[-1].entries[section] += 1
    return versions


def _semver(label: str) -> VersionKey:
    match = SEMVER.fullmatch(label)
    assert match, f"{label!r} is not a semantic version"
    pre = match["pre"]
    parts: tuple[PrereleasePart, ...] = ()
    if pre:
        parts = tuple((0, int(part)) if part.isdigit() else (1, part) for part in pre.split("."))
    # A release ranks above its pre-releases; a pre-release's fields compare one by one.
    return (int(match["major"]), int(match["minor"]), int(match["patch"]), 0 if pre else 1,
            parts)


def _released() -> list[Version]:
    return [version for version in _versions() if version.label != UNRELEASED]


def _project_version() -> str:
    with PYPROJECT.open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    assert isinstance(version, str)
    return version


def test_the_first_version_heading_is_unreleased() -> None:
    versions = _versions()
    assert versions, "CHANGELOG.md has no version heading"
    assert versions[0].label == UNRELEASED, (
        f"CHANGELOG.md:{versions[0].line}: the first version heading is "
        f"{versions[0].label!r}, not {UNRELEASED!r}")
    assert [v.label for v in versions].count(UNRELEASED) == 1


def test_released_versions_are_semantic_and_newest_first() -> None:
    released = _released()
    for version in released:
        _semver(version.label)
    for newer, older in pairwise(released):
        assert _semver(newer.label) > _semver(older.label), (
            f"CHANGELOG.md:{older.line}: {older.label} should come before {newer.label}, "
            "or appears twice")


def test_the_version_is_set_once_in_pyproject() -> None:
    project = _project_version()
    _semver(project)
    assert importlib.metadata.version("ldmail") == project, (
        "the installed ldmail reports another version than pyproject.toml: reinstall it")
    released = _released()
    if released:
        assert _semver(released[0].label) <= _semver(project), (
            f"CHANGELOG.md:{released[0].line}: {released[0].label} is newer than "
            f"pyproject.toml's {project}")


def test_subsections_are_the_standard_ones_in_order_and_not_empty() -> None:
    for version in _versions():
        names = [name for name, _ in version.sections]
        for name, line in version.sections:
            assert name in SECTIONS, (
                f"CHANGELOG.md:{line}: {name!r} is not one of {', '.join(SECTIONS)}")
            assert version.entries[name], f"CHANGELOG.md:{line}: {name!r} is empty"
        assert len(set(names)) == len(names), f"[{version.label}] repeats a subsection"
        assert names == sorted(names, key=SECTIONS.index), (
            f"[{version.label}]: subsections {names} are not in the order {list(SECTIONS)}")


def test_every_version_has_a_link_reference_at_the_bottom() -> None:
    lines = _lines()
    while lines and not lines[-1].strip():
        lines.pop()
    links: dict[str, str] = {}
    while lines and (match := LINK_REFERENCE.fullmatch(lines[-1])):
        links[match["label"]] = match["url"]
        lines.pop()
    assert not any(LINK_REFERENCE.fullmatch(line) for line in lines), (
        "every link reference belongs in the block at the bottom")
    released = _released()
    for version in _versions():
        assert version.label in links, f"[{version.label}] has no link reference at the bottom"
        if version.label != UNRELEASED:
            assert f"v{version.label}" in links[version.label], (
                f"[{version.label}]'s link does not name the tag v{version.label}")
    if released:
        assert links[UNRELEASED].endswith(f"v{released[0].label}...HEAD"), (
            f"[{UNRELEASED}] should compare v{released[0].label}...HEAD")
