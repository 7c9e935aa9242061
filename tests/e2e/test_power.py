"""Power before sending: validate, plan and report say what a campaign can detect, and warn
when its hypothesis cannot be decided with the people it reaches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ldmail.measurement.stats import detectable_uplift

from .conftest import Cli

NOW = "2026-12-07T10:00+01:00"


def _people(project: Path, count: int) -> None:
    rows = ["Email;First name;Last name;Language;Department;Start date;Certification"]
    rows += [f"p{i:04d}@example.org;P{i};Test;EN;Sales;01-01-2015;" for i in range(count)]
    (project / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _hypothesis(project: Path, expected: str, holdout: str = "10%") -> None:
    campaign = project / "campaigns" / "welcome.yaml"
    text = campaign.read_text(encoding="utf-8").replace("holdout: 10%", f"holdout: {holdout}")
    text += ("hypothesis:\n  belief: Two short mails lead more colleagues to register.\n"
             f"  expected_uplift: {expected}\n  baseline: 10%\n")
    campaign.write_text(text, encoding="utf-8")


def test_validate_warns_when_the_hypothesis_cannot_be_decided(project: Path, cli: Cli) -> None:
    _people(project, 200)
    _hypothesis(project, "15pp")
    result = cli("validate", "--project", project, "--now", NOW)
    assert result.exit_code == 0, result.output  # a warning, not an error
    warning = next(line for line in result.stdout.splitlines() if "hypothesis cannot" in line)
    assert warning.startswith("warning: campaigns/welcome.yaml:")
    assert "with 200 people and a 10% holdout you can detect +" in warning
    assert "the hypothesis expects +15 pp: " in warning and "people" in warning
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("welcome: "))
    assert "200 people, 10% holdout" in line and "not decidable" in line

    result = cli("validate", "--project", project, "--now", NOW, "--format", "json")
    found = json.loads(result.stdout)["sensitivity"][0]
    assert found["campaign"] == "welcome" and found["decidable"] is False
    assert found["mailed"] + found["holdout"] == 200
    expected = detectable_uplift(found["mailed"], found["holdout"], 0.10)
    assert expected is not None
    assert found["detectable_uplift_pp"] == round(expected * 100, 1)
    assert found["detectable_uplift_pp"] > 15


def test_a_decidable_hypothesis_gets_no_warning(project: Path, cli: Cli) -> None:
    _people(project, 2000)
    _hypothesis(project, "10pp", holdout="30%")
    result = cli("validate", "--project", project, "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "hypothesis cannot" not in result.stdout
    assert "hypothesis decidable" in result.stdout


@pytest.mark.parametrize("people", [200, 40])
def test_plan_and_report_show_the_same_detectable_uplift(project: Path, cli: Cli,
                                                         people: int) -> None:
    _people(project, people)
    _hypothesis(project, "15pp")
    result = cli("plan", "--project", project, "--now", NOW, "--format", "json")
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)["sensitivity"][0]
    assert planned["mailed"] + planned["holdout"] == people
    result = cli("plan", "--project", project, "--now", NOW)
    assert "warning: welcome: hypothesis cannot be decided" in result.stdout

    assert cli("send", "--project", project, "--now", NOW).exit_code == 0
    result = cli("report", "--project", project, "--now", NOW, "--format", "json")
    reported = json.loads(result.stdout)["campaigns"][0]
    assert reported["detectable_uplift_pp"] == planned["detectable_uplift_pp"]
    assert reported["hypothesis"]["status"] == "undecided"
    assert reported["hypothesis"]["expected_uplift_pp"] == 15
