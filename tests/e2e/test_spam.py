"""Every shipped message scores under 1.0 in SpamAssassin (Debian's `spamassassin`, local
rules only): the layout's hidden preheader, the button and the headers do not read as spam."""

from __future__ import annotations

import mailbox
import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ldmail.content.message import MessageBuilder, new_message_id, unsubscribe_links
from ldmail.content.preview import build_preview
from ldmail.project.config import load_project

pytestmark = pytest.mark.skipif(shutil.which("spamassassin") is None,
                                reason="spamassassin is not installed (Debian: apt install "
                                       "spamassassin; .ci/run installs it)")
LIMIT = 1.0


def test_every_shipped_message_scores_under_one(example: Path, tmp_path: Path) -> None:
    project = load_project(example)
    today = date(2026, 12, 1)
    builder = MessageBuilder(project.settings, datetime(2026, 12, 1, 9, tzinfo=UTC))
    box = mailbox.mbox(tmp_path / "shipped.mbox")
    built = 0
    for campaign_id, file in project.campaigns.items():
        campaign = file.model
        sender = builder.sender(campaign_id, campaign)
        for language in project.settings.languages:
            for item in build_preview(project, campaign_id, today, language=language,
                                      sample_people=True):
                token = f"{built:032x}"
                message = builder.build(
                    rendered=item.rendered, campaign_id=campaign_id, campaign=campaign,
                    step=item.step, recipient=item.recipient, recipient_name="Sanne de Jong",
                    token=token, message_id=new_message_id(sender), zone=None,
                    links=unsubscribe_links(project.settings, sender, token))
                box.add(mailbox.mboxMessage(message.data.replace(b"\r\n", b"\n")))
                built += 1
    box.close()
    assert built >= 146  # 8 campaigns, every step, persona and language
    checked = subprocess.run(["spamassassin", "-L", "--mbox"],
                             stdin=(tmp_path / "shipped.mbox").open("rb"),
                             capture_output=True, timeout=600, check=True)
    statuses = re.findall(rb"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ "
                          rb"tests=([^\n]*(?:\n\t[^\n]*)*)", checked.stdout, re.M)
    assert len(statuses) == built
    worst = max((float(score), tests.decode()) for score, tests in statuses)
    assert worst[0] < LIMIT, f"a shipped message scores {worst[0]}: {worst[1]}"
