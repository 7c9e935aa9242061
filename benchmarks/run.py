#!/usr/bin/env python3
"""ldmail's performance benchmark: throughput against mailmerge, scale, cron and start-up.

    python benchmarks/run.py            # the full run (about 15 minutes on 2 cores)
    python benchmarks/run.py --quick    # a couple of minutes: smaller sizes, fewer repeats

What it measures (see benchmarks/README.md):

1. send: N synthetic learners, one due step, `ldmail send` (enrol + render + MIME + ledger +
   SMTP) against `mailmerge --no-dry-run --no-limit` (2.3.0, installed from PyPI into a
   temporary venv) with a template of the same HTML size, both to Postfix's `smtp-sink` on
   loopback; runs alternate, medians and the ratio are reported.
2. scale: import + enrol (`ldmail send` at an hour outside the send window: the export is read,
   everyone is enrolled, nothing goes out) and `ldmail plan` for 10k, 100k and 1M learners:
   wall time and peak RSS of each process.
3. cron: `ldmail send` with nothing due on a 100k-person ledger whose first step went out and
   whose second is a week away: the first run after a change, and the steady state.
4. `ldmail --help` start-up.

Results go to benchmarks/results/<date>-<host>.md and .json. Everything runs on this machine:
the only network traffic is to smtp-sink on 127.0.0.1. Every child process has a time limit and
the script stops by itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MAILMERGE = "mailmerge==2.3.0"
SENDER = "Learning Team <learning@example.org>"
# A Tuesday: 10:00 is inside the Mon-Fri 09:00-17:00 window, 20:00 is outside it.
SEND_NOW = "2026-12-01T10:00+01:00"
EVENING = "2026-12-01T20:00+01:00"
CRON_NOW = "2026-12-03T10:00+01:00"  # two days after the first step, five before the second
CHILD_TIMEOUT = 900.0  # seconds any one child process may take before it is killed

FIRST = ["Anna", "Bram", "Chloé", "Daan", "Emma", "Finn", "Grace", "Hugo", "Iris", "Jan",
         "Kim", "Lars", "Maud", "Noah", "Olivia", "Pieter", "Quinten", "Rosa", "Sem", "Tess",
         "Umar", "Vera", "Wout", "Xander", "Yara", "Zoë", "Fatima", "Mohamed", "Sanne", "Lucas"]
LAST = ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
        "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer",
        "de Wit", "Dijkstra", "Smith", "Müller", "García", "Nowak", "O'Brien", "Kowalski"]
DEPARTMENTS = ["Sales", "Support", "Finance", "IT", "HR", "Logistics", "Marketing",
               "Installation", "Design", "Board"]

SETTINGS = """\
organisation: Benchmark Kitchens
default_language: en
languages: [en, nl]
unsubscribe:
  mailto: unsubscribe@example.org
  url: https://learning.example.org/unsubscribe
transport: {transport}
vars:
  platform_url: https://learning.example.org
"""
AUDIENCES = """\
people:
  source: people.csv
  columns:
    email: Email
    first_name: First name
    last_name: Last name
    language: Language
    department: Department
    start_date: Start date
    certification: Certification
  dates: [start_date]
personas:
  compelled:
    label: Compelled learner
    match: "certification != ''"
    wiifm:
      en: "A clear path to your certificate, with the deadline and every step laid out."
      nl: "Een helder pad naar je certificaat, met de deadline en elke stap op een rij."
  newcomer:
    label: Newcomer
    match: "tenure_days < 120"
    wiifm:
      en: "Find your feet faster: short courses that answer the questions of your first months."
      nl: "Sneller je weg vinden: korte trainingen voor de vragen van je eerste maanden."
  skill-builder:
    label: Skill builder
    match: "department in ['Sales', 'Support']"
    wiifm:
      en: "The skills your role asks for next, in a learning path made for your job."
      nl: "De vaardigheden die je functie nu vraagt, in een leerpad voor jouw werk."
  broad-developer:
    label: Broad developer
    match: "true"
    wiifm:
      en: "Learn what you want, when you want: the whole catalogue is open to you."
      nl: "Leer wat je wilt, wanneer je wilt: de hele catalogus staat voor je open."
"""
CAMPAIGN = """\
title: Welcome to the Learning Kitchen
phase: activate
audience:
  personas: [compelled, newcomer, skill-builder, broad-developer]
  where: "department != 'Board'"
starts: 2026-01-01
holdout: {holdout}
goal: {{event: registered}}
sender: "{sender}"
send_window: {{days: mon-fri, hours: "09:00-17:00", timezone: Europe/Amsterdam}}
steps:
  - {{id: hello, after: 0d, template: bench/hello}}
  - {{id: first-course, after: 7d, template: bench/first-course}}
"""
TEMPLATES = {
    "en": ("{{ person.first_name }}, your learning platform is open",
           "Ten minutes is enough to find your first course.",
           "Hi {{ person.first_name }},\n\nOur new learning platform is open for you. Log in with "
           "your work account and have a look around: [open the platform]({{ vars.platform_url "
           "}}).\n\nMost colleagues start with a short course of under twenty minutes:\n\n"
           "- *Customer conversations* in 15 minutes\n- *Kitchen planning basics* in 20 minutes\n"
           "- *Working safely* in 10 minutes\n\nQuestions? Reply to this e-mail, or ask your "
           "team lead.\n\nThe Learning Team"),
    "nl": ("{{ person.first_name }}, je leerplatform staat open",
           "Tien minuten is genoeg om je eerste training te vinden.",
           "Hoi {{ person.first_name }},\n\nOns nieuwe leerplatform staat voor je open. Log in "
           "met je werkaccount en kijk rond: [open het platform]({{ vars.platform_url }}).\n\n"
           "De meeste collega's beginnen met een korte training van minder dan twintig minuten:"
           "\n\n- *Klantgesprekken* in 15 minuten\n- *Basis keukenplanning* in 20 minuten\n"
           "- *Veilig werken* in 10 minuten\n\nVragen? Beantwoord deze e-mail, of vraag het je "
           "teamleider.\n\nHet Learning Team"),
}


def template_text(subject: str, preheader: str, body: str) -> str:
    return (f"{{% block subject %}}{subject}{{% endblock %}}\n"
            f"{{% block preheader %}}{preheader}{{% endblock %}}\n"
            "{% block wiifm %}{{ persona.wiifm }}{% endblock %}\n"
            f"{{% block body %}}\n{body}\n{{% endblock %}}\n")


ENDINGS = ["", "a", "e", "o", "ie", "ina", "el", "ric", "win", "ette", "y", "is", "an", "ko",
           "lyn", "mar", "ra", "us", "bert", "hild"]


def first_names() -> tuple[list[str], list[float]]:
    """600 first names, weighted 1/rank as real ones are: most people share a few dozen."""
    names = [base + ending for ending in ENDINGS for base in FIRST]
    return names, [1 / rank for rank in range(1, len(names) + 1)]


def write_people(path: Path, n: int, seed: int = 7) -> None:
    """N learners, saved the way Excel does (semicolons, UTF-8 with BOM, CRLF)."""
    rng = random.Random(seed)
    names, weights = first_names()
    firsts = rng.choices(names, weights, k=n)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        out = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        out.writerow(["Email", "First name", "Last name", "Language", "Department",
                      "Start date", "Certification"])
        for i in range(n):
            first, last = firsts[i], rng.choice(LAST)
            local = re.sub(r"[^a-z]", "", (first + last).lower().encode("ascii", "ignore")
                           .decode()) or "learner"
            year = rng.randint(2005, 2026)
            month = rng.randint(1, 12 if year < 2026 else 10)
            out.writerow([f"{local}.{i}@example.org", first, last,
                          "NL" if rng.random() < 0.3 else "EN", rng.choice(DEPARTMENTS),
                          f"{rng.randint(1, 28):02d}-{month:02d}-{year}",
                          "GDPR basics" if rng.random() < 0.1 else ""])


def make_project(folder: Path, n: int, transport: str, holdout: str = "0%") -> Path:
    """A campaign repo with one two-step campaign for N learners (nobody in the Board)."""
    folder.mkdir(parents=True)
    (folder / "ldmail.yaml").write_text(SETTINGS.format(transport=transport), encoding="utf-8")
    (folder / "audiences.yaml").write_text(AUDIENCES, encoding="utf-8")
    (folder / "campaigns").mkdir()
    (folder / "campaigns" / "welcome.yaml").write_text(
        CAMPAIGN.format(holdout=holdout, sender=SENDER), encoding="utf-8")
    for language, (subject, preheader, body) in TEMPLATES.items():
        target = folder / "templates" / language / "bench"
        target.mkdir(parents=True)
        for name in ("hello", "first-course"):
            (target / f"{name}.md").write_text(template_text(subject, preheader, body),
                                               encoding="utf-8")
    write_people(folder / "people.csv", n)
    return folder


def people_rows(project: Path) -> list[dict[str, str]]:
    with (project / "people.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def mailmerge_files(project: Path, folder: Path, port: int, html_part: bool = True) -> None:
    """mailmerge's template, database and server config for the same people and message.

    The template is multipart/alternative with ldmail's own rendered text and HTML for one
    person (the first name made a placeholder), so both tools send messages of the same size.
    """
    sys.path.insert(0, str(REPO))
    from ldmail.content.render import Renderer
    from ldmail.project.config import load_project

    loaded = load_project(project)
    campaign = loaded.campaign("welcome")
    persona = loaded.audiences.personas["broad-developer"]
    person = {"email": "x@example.org", "first_name": "Zyxwvut", "last_name": "Qqq",
              "language": "en", "department": "IT", "start_date": None, "certification": "",
              "tenure_days": 1000}
    rendered = Renderer(loaded).render("welcome", campaign, campaign.steps[0], person,
                                       "broad-developer", persona, "en",
                                       unsubscribe_url="https://learning.example.org/"
                                                       "unsubscribe?token=" + "0" * 32)
    html = rendered.html.replace("Zyxwvut", "{{first_name}}")
    text = rendered.text.replace("Zyxwvut", "{{first_name}}")
    subject = rendered.subject.replace("Zyxwvut", "{{first_name}}")
    head = f"TO: {{{{first_name}}}} {{{{last_name}}}} <{{{{email}}}}>\nSUBJECT: {subject}\n" \
        f"FROM: {SENDER}\n"
    if html_part:
        body = ('MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="boundary"'
                '\n\nThis is a MIME-encoded message.\n\n--boundary\n'
                f'Content-Type: text/plain; charset="utf-8"\n\n{text}\n--boundary\n'
                f'Content-Type: text/html; charset="utf-8"\n\n{html}\n--boundary--\n')
    else:  # the plain-text case mailmerge is usually measured with
        body = f"\n{text}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mailmerge_template.txt").write_text(head + body, encoding="utf-8")
    with (folder / "mailmerge_database.csv").open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["email", "first_name", "last_name"])
        for row in people_rows(project):
            if row["Department"] != "Board":  # the same audience as the ldmail campaign
                out.writerow([row["Email"], row["First name"], row["Last name"]])
    (folder / "mailmerge_server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nratelimit = 0\n", encoding="utf-8")


# -- running and measuring child processes ---------------------------------------------------


@dataclass
class Measured:
    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


TIME = "/usr/bin/time"
RSS_MARK = "ldmail-benchmark-maxrss-kb="


def run(command: Sequence[str | Path], cwd: Path | None = None, timeout: float = CHILD_TIMEOUT,
        env: dict[str, str] | None = None) -> Measured:
    """Run a child; wall time and its own peak RSS.

    The peak RSS comes from GNU time when it is there: a child forked from this (large)
    process would otherwise report this process's size as its own peak.
    """
    timed = Path(TIME).exists()
    argv = [str(c) for c in command]
    if timed:
        argv = [TIME, "-f", RSS_MARK + "%M", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        rss_kb = float(usage.ru_maxrss)
        if timed and RSS_MARK in stderr:
            stderr, _, figure = stderr.rpartition(RSS_MARK)
            rss_kb = float(figure.split()[0])
            stderr = "\n".join(line for line in stderr.splitlines()
                               if not line.startswith("Command exited with non-zero status"))
        return Measured(seconds, rss_kb / 1024, process.returncode,
                        out.read().decode(errors="replace"), stderr)


def checked(measured: Measured, what: str, ok: tuple[int, ...] = (0,)) -> Measured:
    if measured.returncode not in ok:
        raise SystemExit(f"{what} failed ({measured.returncode}):\n{measured.stdout[-2000:]}\n"
                         f"{measured.stderr[-2000:]}")
    return measured


LDMAIL: list[str] = []  # the command that runs ldmail; --ldmail sets it


def ldmail(*args: str | Path) -> list[str | Path]:
    if LDMAIL:
        return [*LDMAIL, *args]
    executable = shutil.which("ldmail")
    return [executable, *args] if executable else [sys.executable, "-m", "ldmail", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- smtp-sink ---------------------------------------------------------------------------------


def ensure_smtp_sink() -> str:
    """Postfix's smtp-sink; installs Debian's postfix package (service not started) if missing."""
    found = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink"
                                          if Path("/usr/sbin/smtp-sink").exists() else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("smtp-sink is missing: install Debian's postfix package "
                         "(apt-get install postfix) and run again")
    print("installing postfix for smtp-sink (the postfix service is not configured or started)")
    subprocess.run(["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select "
                   b"No configuration\n", check=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix"],
                   check=True, env=env, timeout=600, stdout=subprocess.DEVNULL)
    return "/usr/sbin/smtp-sink"


class Sink:
    """`smtp-sink -c` on a loopback port: accepts everything, counts messages, keeps nothing."""

    def __init__(self, binary: str, *flags: str) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        command = [binary, "-c", *flags]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root
        command += [f"127.0.0.1:{self.port}", "1000"]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("smtp-sink did not start")

    def messages(self) -> int:
        """Messages received so far (its running counter: "sess=N quit=N mesg=N")."""
        self.log.seek(0)
        counters = re.findall(rb"mesg=(\d+)", self.log.read())
        return int(counters[-1]) if counters else 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@contextmanager
def sink(binary: str, *flags: str) -> Iterator[Sink]:
    server = Sink(binary, *flags)
    try:
        yield server
    finally:
        server.stop()


# -- the benchmarks ----------------------------------------------------------------------------


@dataclass
class Results:
    started: str
    machine: dict[str, Any]
    quick: bool
    send: dict[str, Any] = field(default_factory=dict)
    scale: list[dict[str, Any]] = field(default_factory=list)
    cron: dict[str, Any] = field(default_factory=dict)
    help: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
            "memory_gib": round(memory, 1), "python": platform.python_version(),
            "os": platform.platform()}


def mailmerge_venv(folder: Path) -> Path:
    print(f"installing {MAILMERGE} into a temporary venv")
    venv.create(folder, with_pip=True)
    subprocess.run([folder / "bin" / "pip", "install", "-q", MAILMERGE], check=True,
                   timeout=600, stdout=subprocess.DEVNULL)
    return folder / "bin" / "mailmerge"


def bench_send(work: Path, sink_binary: str, mailmerge: Path, n: int, repeats: int,
               connections: int) -> dict[str, Any]:
    """`ldmail send` and mailmerge (HTML, and plain text) to one smtp-sink, alternating runs."""
    wide = f"ldmail_{connections}conn"
    times: dict[str, list[float]] = {"ldmail": [], wide: [], "mailmerge": [],
                                     "mailmerge_text": []}
    delivered: dict[str, list[int]] = {name: [] for name in times}
    with sink(sink_binary) as server:
        transport = f"{{kind: smtp, host: 127.0.0.1, port: {server.port}, security: none}}"
        template = make_project(work / "send-template", n, transport)
        wide_template = work / "send-template-wide"
        shutil.copytree(template, wide_template)
        settings = wide_template / "ldmail.yaml"
        settings.write_text(settings.read_text(encoding="utf-8").replace(
            "security: none}", f"security: none, connections: {connections}}}"),
            encoding="utf-8")
        folders = {"mailmerge": work / "mailmerge", "mailmerge_text": work / "mailmerge-text"}
        mailmerge_files(template, folders["mailmerge"], server.port)
        mailmerge_files(template, folders["mailmerge_text"], server.port, html_part=False)
        expected = sum(1 for row in people_rows(template) if row["Department"] != "Board")

        def timed(name: str, command: list[str | Path], cwd: Path | None = None) -> None:
            before = server.messages()
            measured = checked(run(command, cwd=cwd), name)
            time.sleep(0.3)  # smtp-sink updates its counter as sessions end
            delivered[name].append(server.messages() - before)
            times[name].append(measured.seconds)
            print(f"  {name:<15} {measured.seconds:7.2f} s {expected / measured.seconds:8.0f} "
                  f"msgs/s  ({delivered[name][-1]} arrived)")

        for i in range(repeats):
            for name, source in (("ldmail", template), (wide, wide_template)):
                project = work / f"send-{i}"
                shutil.copytree(source, project)
                timed(name, ldmail("send", "--project", project, "--now", SEND_NOW))
                shutil.rmtree(project)
            for name, folder in folders.items():
                timed(name, [mailmerge, "--no-dry-run", "--no-limit", "--output-format", "raw"],
                      cwd=folder)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "messages": expected, "repeats": repeats, "connections": connections,
        "seconds": times, "delivered": delivered,
        "msgs_per_s": {name: round(expected / m) for name, m in medians.items()},
        "ratio": round(medians["mailmerge"] / medians["ldmail"], 2),
        "ratio_text": round(medians["mailmerge_text"] / medians["ldmail"], 2),
        "ratio_wide": round(medians["mailmerge"] / medians[wide], 2),
        "ratio_wide_text": round(medians["mailmerge_text"] / medians[wide], 2),
        "template_bytes": {name: (folder / "mailmerge_template.txt").stat().st_size
                           for name, folder in folders.items()},
    }


def bench_outbox(work: Path, n: int, repeats: int) -> dict[str, Any]:
    """`ldmail send` to the default outbox transport (one .eml per message)."""
    template = make_project(work / "outbox-template", n, "{kind: outbox}")
    times = []
    for i in range(repeats):
        project = work / f"outbox-{i}"
        shutil.copytree(template, project)
        measured = checked(run(ldmail("send", "--project", project, "--now", SEND_NOW)),
                           "ldmail send (outbox)")
        times.append(measured.seconds)
        files = list((project / ".ldmail" / "outbox").glob("*.eml"))
        size = sum(f.stat().st_size for f in files) // max(len(files), 1)
        shutil.rmtree(project)
        print(f"  outbox send     run {i + 1}: {measured.seconds:6.2f} s, {len(files)} files "
              f"of {size} bytes on average")
    return {"messages": len(files), "seconds": times, "message_bytes": size,
            "msgs_per_s": round(len(files) / statistics.median(times))}


def bench_scale(work: Path, n: int) -> dict[str, Any]:
    """Import + enrol (a send outside the window) and plan, for N learners."""
    project = make_project(work / f"scale-{n}", n, "{kind: outbox}")
    enrol = checked(run(ldmail("send", "--project", project, "--now", EVENING)),
                    f"enrol {n}")
    plan = checked(run(ldmail("plan", "--project", project, "--now", EVENING, "--days", "14",
                              "--show", "10")), f"plan {n}")
    conn = sqlite3.connect(project / ".ldmail" / "ledger.db")
    enrolled = conn.execute("SELECT count(*) FROM enrolments").fetchone()[0]
    conn.close()
    planned = re.search(r"(\d+) sends planned", plan.stdout)
    result = {"learners": n, "enrolled": enrolled,
              "planned": int(planned.group(1)) if planned else None,
              "enrol_seconds": round(enrol.seconds, 2), "enrol_rss_mb": round(enrol.max_rss_mb),
              "plan_seconds": round(plan.seconds, 2), "plan_rss_mb": round(plan.max_rss_mb),
              "total_seconds": round(enrol.seconds + plan.seconds, 2),
              "peak_rss_mb": round(max(enrol.max_rss_mb, plan.max_rss_mb))}
    print(f"  {n:>9,} learners: enrol {enrol.seconds:6.2f} s ({enrol.max_rss_mb:5.0f} MB), "
          f"plan {plan.seconds:6.2f} s ({plan.max_rss_mb:5.0f} MB)")
    if n < 1_000_000:
        return result
    shutil.rmtree(project)
    return result


def bench_cron(work: Path, n: int, repeats: int) -> dict[str, Any]:
    """Nothing due on an N-person ledger: step one went out, step two is days away."""
    project = work / f"scale-{n}"
    if not (project / ".ldmail" / "ledger.db").exists():
        project = make_project(work / f"cron-{n}", n, "{kind: outbox}")
        checked(run(ldmail("send", "--project", project, "--now", EVENING)), "enrol")
    # Record the first step as sent to everyone (as a day's send would have), in SQL: sending
    # N real messages here would only measure the send benchmark again.
    conn = sqlite3.connect(project / ".ldmail" / "ledger.db")
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO messages (campaign, step, email, due_at, state, attempts,"
            " message_id, claimed_at, sent_at) SELECT campaign, 'hello', email, anchor_at,"
            " 'sent', 1, '<' || rowid || '@example.org>', '2026-12-02T09:00:00Z',"
            " '2026-12-02T09:00:00Z' FROM enrolments WHERE grp = 'treatment'")
    conn.close()
    first = checked(run(ldmail("send", "--project", project, "--now", CRON_NOW)), "cron run")
    times = []
    for i in range(repeats):
        measured = checked(run(ldmail("send", "--project", project, "--now",
                                      CRON_NOW.replace("10:00", f"10:{5 * (i + 1):02d}"))),
                           "cron run")
        times.append(measured.seconds)
    print(f"  cron, {n:,} people: first run after a change {first.seconds:.2f} s, then "
          f"median {statistics.median(times):.2f} s ({first.stdout.strip()})")
    return {"people": n, "first_run_seconds": round(first.seconds, 2),
            "steady_seconds": [round(t, 3) for t in times],
            "steady_median_seconds": round(statistics.median(times), 3),
            "first_run_rss_mb": round(first.max_rss_mb)}


def bench_help(repeats: int) -> dict[str, Any]:
    run(ldmail("--help"))  # warm the file cache and the bytecode
    times = [checked(run(ldmail("--help")), "ldmail --help").seconds for _ in range(repeats)]
    print(f"  ldmail --help: median {statistics.median(times) * 1000:.0f} ms")
    return {"seconds": [round(t, 3) for t in times],
            "median_ms": round(statistics.median(times) * 1000)}


# -- reporting ---------------------------------------------------------------------------------


def markdown(results: Results) -> str:
    m = results.machine
    lines = [f"# ldmail benchmark, {results.started[:10]}", "",
             f"{m['host']}: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
             f"Python {m['python']}{' (quick mode)' if results.quick else ''}.", ""]
    s = results.send
    if s:
        med = {name: statistics.median(values) for name, values in s["seconds"].items()}
        rate = s["msgs_per_s"]
        wide = f"ldmail_{s['connections']}conn"
        lines += ["## Send throughput (to smtp-sink on loopback, medians)", "",
                  "| tool | messages | median s | msgs/s |", "|---|---:|---:|---:|",
                  f"| ldmail send (1 SMTP connection, the default) | {s['messages']} | "
                  f"{med['ldmail']:.2f} | {rate['ldmail']} |",
                  f"| ldmail send (transport.connections: {s['connections']}) | "
                  f"{s['messages']} | {med[wide]:.2f} | {rate[wide]} |",
                  f"| mailmerge 2.3.0, same text + HTML message | {s['messages']} | "
                  f"{med['mailmerge']:.2f} | {rate['mailmerge']} |",
                  f"| mailmerge 2.3.0, text part only | {s['messages']} | "
                  f"{med['mailmerge_text']:.2f} | {rate['mailmerge_text']} |", "",
                  f"ldmail is **{s['ratio']}x** mailmerge with the same HTML message "
                  f"(**{s['ratio_wide']}x** with {s['connections']} connections), "
                  f"{s['ratio_text']}x ({s['ratio_wide_text']}x) mailmerge sending plain text. "
                  f"{s['repeats']} alternating runs each; whole processes: start-up, export, "
                  "enrolment, rendering, MIME, ledger and SMTP.", ""]
        if "outbox" in s:
            o = s["outbox"]
            lines += [f"Outbox transport (one .eml file each): {o['messages']} messages of "
                      f"{o['message_bytes']} bytes on average, median "
                      f"{statistics.median(o['seconds']):.2f} s, {o['msgs_per_s']} msgs/s. "
                      f"mailmerge's templates: {s['template_bytes']['mailmerge']} bytes (text "
                      f"+ HTML), {s['template_bytes']['mailmerge_text']} bytes (text).", ""]
    if results.scale:
        lines += ["## Scale: import + enrol, then plan", "",
                  "| learners | enrol s | enrol MB | plan s | plan MB | total s | sends "
                  "planned |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results.scale:
            lines.append(f"| {r['learners']:,} | {r['enrol_seconds']} | {r['enrol_rss_mb']} | "
                         f"{r['plan_seconds']} | {r['plan_rss_mb']} | {r['total_seconds']} | "
                         f"{r['planned']} |")
        lines.append("")
    if results.cron:
        c = results.cron
        lines += ["## Cron run with nothing due", "",
                  f"{c['people']:,} people on the ledger, first step sent, second days away: "
                  f"first run after a change {c['first_run_seconds']} s, steady state median "
                  f"{c['steady_median_seconds']} s.", ""]
    if results.help:
        lines += ["## Start-up", "", f"`ldmail --help`: median {results.help['median_ms']} ms.",
                  ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer repeats: a couple of minutes")
    parser.add_argument("--only", default="send,scale,cron,help",
                        help="comma-separated subset of send,scale,cron,help")
    parser.add_argument("--messages", type=int, help="learners in the send benchmark")
    parser.add_argument("--connections", type=int, default=2,
                        help="transport.connections for ldmail's second send variant")
    parser.add_argument("--repeats", type=int, help="runs of each send command")
    parser.add_argument("--ldmail", help="command that runs ldmail, e.g. to measure another "
                        "checkout: --ldmail 'python -m ldmail' with PYTHONPATH set")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--name", help="file name (without extension) for the results "
                        "[default: date-host]; a run with --only updates that file")
    args = parser.parse_args()
    if args.ldmail:
        LDMAIL[:] = shlex.split(args.ldmail)
    only = set(args.only.split(","))
    results = Results(started=datetime.now(UTC).isoformat(timespec="seconds"),
                      machine=machine(), quick=args.quick)
    work = Path(tempfile.mkdtemp(prefix="ldmail-bench-"))
    try:
        if "send" in only:
            n = args.messages or (2_000 if args.quick else 10_000)
            repeats = args.repeats or (3 if args.quick else 5)
            print(f"send: {n} learners, {repeats} alternating runs")
            binary = ensure_smtp_sink()
            mailmerge = mailmerge_venv(work / "mailmerge-venv")
            results.send = bench_send(work, binary, mailmerge, n, repeats, args.connections)
            results.send["outbox"] = bench_outbox(work, n, 1 if args.quick else 3)
        if "scale" in only:
            sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
            print("scale: import + enrol, then plan")
            results.scale = [bench_scale(work, n) for n in sizes]
        if "cron" in only:
            print("cron: nothing due")
            results.cron = bench_cron(work, 100_000, 3 if args.quick else 5)
        if "help" in only:
            print("start-up")
            results.help = bench_help(5 if args.quick else 11)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"{results.started[:10]}-{platform.node() or 'host'}" + (
        "-quick" if args.quick else "")
    earlier = args.out / f"{stem}.json"
    if only != {"send", "scale", "cron", "help"} and earlier.exists():
        # A partial run updates the sections it measured and keeps the others.
        kept = json.loads(earlier.read_text(encoding="utf-8"))
        for section in ("send", "scale", "cron", "help"):
            if section not in only and kept.get(section):
                setattr(results, section, kept[section])
    (args.out / f"{stem}.json").write_text(json.dumps(asdict(results), indent=2) + "\n",
                                           encoding="utf-8")
    text = markdown(results)
    (args.out / f"{stem}.md").write_text(text, encoding="utf-8")
    print(f"\n{text}\nwritten to {args.out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
