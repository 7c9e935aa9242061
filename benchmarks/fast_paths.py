"""What each of ldmail's speed-ups buys, measured with it and without it.

Each fast path lives behind one named seam; this script turns the seam off in-process and
times the same work again, so a speed-up that no longer pays for itself shows up here and can
go. It prints a table and writes it to benchmarks/results/<date>-fast-paths.md:

    python benchmarks/fast_paths.py            # about two minutes on 2 cores
    python benchmarks/fast_paths.py --people 500

- rendering memos (`Renderer(memos=False)`); off: every message is rendered from scratch;
- name placeholders (`Renderer(name_placeholders=False)`); off: memos are keyed by the
  reader's name;
- direct MIME bytes (message.MessageBuilder.build); off: an EmailMessage for each message;
- SMTP pipelining (delivery.transport.smtp._SMTP, RFC 2920); off: smtp-sink started
  with -P, so every command waits for its reply.

Three former speed-ups did not pay and were removed (figures in
results/2026-11-30-fast-paths-review.md): a pool of random bytes for Message-IDs and MIME
boundaries, a 64 MB page cache for the ledger, and a second memo of expression answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (benchmarks/run.py: the synthetic project and smtp-sink)

from ldmail.audience.export import PeopleStream  # noqa: E402
from ldmail.clock import parse_now  # noqa: E402
from ldmail.content import message, render  # noqa: E402
from ldmail.delivery.send import send  # noqa: E402
from ldmail.project.config import load_project  # noqa: E402

REPEATS = 3


def best(work: Callable[[], object]) -> float:
    """The median of REPEATS timings of `work`, in seconds."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def render_all(project: Path, today: date, **switches: bool) -> Callable[[], list[Any]]:
    loaded = load_project(project)
    people = [person for person in PeopleStream(loaded, today) if person.persona]
    campaign = loaded.campaign("welcome")
    step = campaign.steps[0]

    def work() -> list[Any]:
        renderer = render.Renderer(loaded, **switches)  # fresh memos, as each run starts
        return [renderer.render("welcome", campaign, step, person.attributes, person.persona,
                                loaded.audiences.personas.get(person.persona or ""),
                                person.language, unsubscribe_url=f"https://x.test/u/{i:032x}",
                                token=f"{i:032x}") for i, person in enumerate(people)]
    return work


def measure_rendering(project: Path, today: date) -> list[tuple[str, float, float, int]]:
    work = render_all(project, today)
    count = len(work())
    on = best(work)
    no_names = best(render_all(project, today, name_placeholders=False))
    no_memos = best(render_all(project, today, memos=False))
    return [("name placeholders", on, no_names, count), ("rendering memos", on, no_memos, count)]


def measure_mime(project: Path, today: date) -> tuple[str, float, float, int]:
    loaded = load_project(project)
    rendered = render_all(project, today)()
    campaign = loaded.campaign("welcome")
    step = campaign.steps[0]
    now = datetime.now().astimezone()
    builder = message.MessageBuilder(loaded.settings, now)

    def fast() -> None:
        for i, item in enumerate(rendered):
            builder.build(rendered=item, campaign_id="welcome", campaign=campaign, step=step,
                          recipient=f"p{i}@example.org", recipient_name="Anna de Vries",
                          token=f"{i:032x}", message_id=f"<{i}@example.org>", zone=None)

    def slow() -> None:
        for i, item in enumerate(rendered):
            built = message.build_message(
                rendered=item, campaign_id="welcome", campaign=campaign, step=step,
                recipient=f"p{i}@example.org", recipient_name="Anna de Vries",
                settings=loaded.settings, token=f"{i:032x}", message_id=f"<{i}@example.org>",
                now=now, zone=None)
            built.as_bytes(policy=built.policy.clone(linesep="\r\n"))
    return "direct MIME bytes", best(fast), best(slow), len(rendered)


def measure_pipelining(work: Path, count: int) -> tuple[str, float, float, int]:
    binary = bench.ensure_smtp_sink()
    times: dict[bool, list[float]] = {True: [], False: []}
    sent = 0
    for attempt in range(REPEATS):
        for pipelined in (True, False):
            with bench.sink(binary, *(() if pipelined else ("-P",))) as server:
                transport = (f"{{kind: smtp, host: 127.0.0.1, port: {server.port},"
                             " security: none}")
                folder = bench.make_project(work / f"smtp-{attempt}-{pipelined}", count,
                                            transport)
                project = load_project(folder)
                started = time.perf_counter()
                summary = send(project, parse_now(bench.SEND_NOW))
                times[pipelined].append(time.perf_counter() - started)
                sent = summary.sent
    return ("SMTP pipelining (whole send)", statistics.median(times[True]),
            statistics.median(times[False]), sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=2000, help="learners rendered and sent")
    parser.add_argument("--out", type=Path, default=bench.RESULTS)
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        project = bench.make_project(work / "render", options.people, "{kind: outbox}")
        today = parse_now(bench.SEND_NOW).date()
        rows += measure_rendering(project, today)
        rows.append(measure_mime(project, today))
        rows.append(measure_pipelining(work, options.people))
    lines = [f"# Fast paths, {date.today().isoformat()}", "",
             f"{bench.machine()['cpu']}; medians of {REPEATS} runs, in-process.", "",
             "| seam | items | with it | without it | per item saved | speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, on, off, items in rows:
        saved = (off - on) / max(items, 1) * 1e6
        lines.append(f"| {name} | {items:,} | {on:.3f} s | {off:.3f} s | {saved:,.1f} µs |"
                     f" {off / on:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / f"{date.today().isoformat()}-fast-paths.md").write_text(text,
                                                                          encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
