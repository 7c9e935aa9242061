"""`ldmail report --format html`: one self-contained page with inline CSS and SVG charts.

Nothing is fetched when the page opens: no scripts, fonts, style sheets or images from
elsewhere, so the file can be mailed to management or kept as a CI artefact and still look
the same years later. Every chart is drawn here as SVG; every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

from .report import ALL, CampaignReport, Report, Segment, StepFunnel, VariantArm
from .report_text import DASH, Words

# Colours: colour-blind safe pairs, readable in print.
TREATMENT_COLOUR = "#1d4ed8"
HOLDOUT_COLOUR = "#9ca3af"
SENT_COLOUR = "#0f766e"
FAILED_COLOUR = "#dc2626"
BOUNCED_COLOUR = "#7c3aed"
UNKNOWN_COLOUR = "#d97706"
PENDING_COLOUR = "#cbd5e1"
SKIPPED_COLOUR = "#64748b"
INK, MUTED, GRID = "#111827", "#6b7280", "#e5e7eb"

CHART_WIDTH = 520
FONT = 12  # px, the chart text size
CHAR = 6.6  # px, the average width of one character at FONT, to size label gutters

CSS = """
:root { --ink: #111827; --muted: #6b7280; --line: #e5e7eb; --panel: #f9fafb;
        --accent: #1d4ed8; --good: #047857; --bad: #b91c1c; --warn: #92400e; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: var(--ink);
       font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 32px 24px 48px; }
header.page { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 24px; }
header.page h1 { margin: 0; font-size: 26px; letter-spacing: -0.01em; }
header.page p { margin: 4px 0 0; color: var(--muted); }
h2 { font-size: 20px; margin: 0; }
h3 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em;
     color: var(--muted); }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 10px;
               padding: 20px 24px; margin-bottom: 24px; break-inside: avoid; }
.overview table { width: 100%; }
.campaign-head { display: flex; justify-content: space-between; gap: 24px; flex-wrap: wrap;
                 align-items: flex-start; }
.campaign-head .meta { color: var(--muted); margin: 2px 0 0; }
.hypothesis { margin: 10px 0 0; max-width: 680px; color: #374151; }
.hypothesis p { margin: 0 0 4px; }
.hypothesis .status { font-weight: 400; }
.hypothesis .status.supported b { color: var(--good); }
.hypothesis .status.not-supported b { color: var(--bad); }
.hypothesis .status.undecided b { color: var(--warn); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
         font-weight: 600; text-transform: uppercase; letter-spacing: .04em; vertical-align: 2px;
         margin-left: 6px; }
.phase-inform { background: #e0f2fe; color: #075985; }
.phase-activate { background: #dcfce7; color: #166534; }
.phase-retain { background: #f3e8ff; color: #6b21a8; }
.kpis { display: flex; gap: 10px; flex-wrap: wrap; }
.kpi { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
       padding: 6px 14px; min-width: 92px; text-align: right; }
.kpi b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.kpi span { font-size: 12px; color: var(--muted); }
.verdict { margin: 16px 0 4px; padding: 10px 14px; border-left: 4px solid var(--muted);
           background: var(--panel); border-radius: 0 6px 6px 0; }
.verdict strong { display: block; }
.verdict.raised { border-color: var(--good); background: #ecfdf5; }
.verdict.lowered { border-color: var(--bad); background: #fef2f2; }
.verdict.borderline, .verdict.no-holdout, .verdict.no-goal { border-color: #d97706;
                                                               background: #fffbeb; }
.verdict p { margin: 6px 0 0; color: var(--muted); }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; margin-top: 16px; }
figure { margin: 0; padding: 12px 14px; border: 1px solid var(--line); border-radius: 8px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-weight: 600; margin-bottom: 6px; }
figcaption small { display: block; font-weight: 400; color: var(--muted); }
.empty { color: var(--muted); padding: 24px 0; text-align: center; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin-top: 4px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right;
         vertical-align: top; white-space: nowrap; }
th.wrap, td.wrap { white-space: normal; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--panel); }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
tr.total td { font-weight: 600; }
.tables { display: grid; grid-template-columns: minmax(0, 1fr); gap: 16px; margin-top: 20px; }
.tables table { width: 100%; }
.scroll { overflow-x: auto; }
.note { color: var(--muted); font-size: 12px; }
footer { color: var(--muted); font-size: 12px; margin-top: 8px; }
@media (max-width: 820px) { .charts { grid-template-columns: 1fr; } }
@media (max-width: 480px) {
  main { padding: 16px 10px 32px; }
  section.card { padding: 14px 12px; }
  header.page h1 { font-size: 21px; }
  .kpi { min-width: 0; flex: 1 1 40%; padding: 6px 10px; }
  th, td { padding: 4px 6px; }
  td.wrap, th.wrap { min-width: 11em; }
}
/* Print on A4: every chart stays with its title, tables wrap instead of overflowing, a
   campaign starts on a new page, and colours print as on screen. */
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { background: #fff; font-size: 11px; -webkit-print-color-adjust: exact;
         print-color-adjust: exact; }
  main { padding: 0; max-width: none; }
  section.card { border: none; padding: 0; margin: 0 0 12px; break-inside: auto; }
  section.campaign { break-before: page; }
  .charts { grid-template-columns: 1fr 1fr; gap: 10px; }
  figure, .verdict, .kpis, .tables > .block, h2, h3, tr { break-inside: avoid; }
  figcaption, h3 { break-after: avoid; }
  th, td { white-space: normal; padding: 3px 6px; }
  .scroll { overflow: visible; }
}
"""


# -- formatting -------------------------------------------------------------------------------

def _day_label(words: Words, day: str) -> str:
    return words.date(date.fromisoformat(day))


# -- SVG primitives ---------------------------------------------------------------------------

def _attrs(**values: str | float) -> str:
    return " ".join(f'{name.rstrip("_").replace("_", "-")}="{escape(_fmt(v))}"'
                    for name, v in values.items())


def _fmt(value: str | float) -> str:
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return str(value)


def _text(x: float, y: float, content: str, **extra: str | float) -> str:
    return f"<text {_attrs(x=x, y=y, **extra)}>{escape(content)}</text>"


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str) -> str:
    return (f"<rect {_attrs(x=x, y=y, width=max(w, 0.0), height=max(h, 0.0), fill=fill)}>"
            f"<title>{escape(tip)}</title></rect>")


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, **extra: str | float) -> str:
    return f"<line {_attrs(x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, **extra)}/>"


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (f'<svg {_attrs(viewBox=f"0 0 {_fmt(width)} {_fmt(height)}", role="img")} '
            f'aria-label="{escape(label)}" font-size="{FONT}" '
            f'font-family="-apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif">'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts: list[str] = []
    for name, colour in items:
        parts.append(f"<rect {_attrs(x=x, y=y - 9, width=10, height=10, rx=2, fill=colour)}/>")
        parts.append(_text(x + 14, y, name, fill=INK))
        x += 14 + len(name) * CHAR + 16
    return parts


def _nice_ticks(low: float, high: float, count: int = 5, *,
                integer: bool = False) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    span = high - low
    if span <= 0:
        return [low, low + 1]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = max(next(m * power for m in steps if m * power >= raw), 1.0 if integer else 0.0)
    ticks = [math.floor(low / step) * step]
    while ticks[-1] < high - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


# -- the one bar chart ------------------------------------------------------------------------

@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float | None]  # one per category; None draws no bar ("no data")


@dataclass(frozen=True)
class Axis:
    ticks: list[float]
    text: Callable[[float], str]  # tick and bar labels

    def scale(self, value: float, length: float) -> float:
        """How far a value reaches along an axis `length` pixels long."""
        return length * value / self.ticks[-1]


def _axis(values: Sequence[float | None], text: Callable[[float], str],
          cap: float | None = None) -> Axis:
    """A value axis from zero; `cap` bounds it (1.0 for rates), else ticks are whole numbers."""
    high = max((v for v in values if v is not None), default=0.0) or (cap or 1.0)
    if cap is not None:
        high = min(high * 1.05, cap)
    return Axis(_nice_ticks(0.0, high, integer=cap is None), text)


def bar_chart(label: str, categories: Sequence[str], series: Sequence[Series], axis: Axis, *,
              horizontal: bool, tip: Callable[[str, Series, float], str],
              value_labels: bool = True) -> str:
    """Grouped bars: horizontal (one row per category) or vertical (one column per category).

    Serves the step funnel, conversion by persona and sends over time. Value labels are
    printed where there is room.
    """
    legend = len(series) > 1
    top = 26.0 if legend else 8.0
    body: list[str] = _legend([(s.name, s.colour) for s in series], 0, 14) if legend else []
    draw = _horizontal_bars if horizontal else _vertical_bars
    height = draw(body, top, categories, series, axis, tip, value_labels)
    return _svg(CHART_WIDTH, height, label, body)


def _horizontal_bars(body: list[str], top: float, categories: Sequence[str],
                     series: Sequence[Series], axis: Axis,
                     tip: Callable[[str, Series, float], str], value_labels: bool) -> float:
    """One row per category, its name in a gutter on the left; returns the chart's height."""
    gutter = min(max((len(c) for c in categories), default=4) * CHAR + 10, 190)
    right = CHART_WIDTH - (52 if value_labels else 12)
    bar, length = 13.0, right - gutter
    band = bar * len(series) + 12
    height = top + band * len(categories) + 22
    for tick in axis.ticks:
        x = gutter + axis.scale(tick, length)
        body.append(_line(x, top - 4, x, height - 20, GRID))
        body.append(_text(x, height - 6, axis.text(tick), fill=MUTED, text_anchor="middle"))
    for i, category in enumerate(categories):
        y0 = top + i * band + 6
        body.append(_text(gutter - 8, y0 + band / 2 - 5, category, fill=INK,
                          text_anchor="end", dominant_baseline="middle"))
        for j, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            y, reach = y0 + j * bar, axis.scale(value, length)
            body.append(_rect(gutter, y, reach, bar - 2, s.colour, tip(category, s, value)))
            if value_labels:
                body.append(_text(gutter + reach + 4, y + bar / 2, axis.text(value),
                                  fill=INK, dominant_baseline="middle", font_size=11))
    body.append(_line(gutter, top - 4, gutter, height - 20, MUTED))
    return height


def _vertical_bars(body: list[str], top: float, categories: Sequence[str],
                   series: Sequence[Series], axis: Axis,
                   tip: Callable[[str, Series, float], str], value_labels: bool) -> float:
    """One column per category, at most eight of their names under the axis; returns the
    chart's height."""
    left, right, bottom = 40.0, CHART_WIDTH - 8, 200.0
    height, length = bottom + 24, bottom - top - 10
    slot = (right - left) / max(len(categories), 1)
    width = max(min(slot * 0.8 / len(series), 28), 1.0)
    for tick in axis.ticks:
        y = bottom - axis.scale(tick, length)
        body.append(_line(left, y, right, y, GRID))
        body.append(_text(left - 6, y, axis.text(tick), fill=MUTED, text_anchor="end",
                          dominant_baseline="middle"))
    every = max(1, math.ceil(len(categories) / 8))
    show_values = value_labels and slot >= 22
    for i, category in enumerate(categories):
        x0 = left + i * slot + (slot - width * len(series)) / 2
        if i % every == 0:
            body.append(_text(left + (i + 0.5) * slot, bottom + 16, category, fill=MUTED,
                              text_anchor="middle"))
        for j, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            x, reach = x0 + j * width, axis.scale(value, length)
            body.append(_rect(x, bottom - reach, width - (1 if width > 3 else 0), reach,
                              s.colour, tip(category, s, value)))
            if show_values and value:
                body.append(_text(x + width / 2, bottom - reach - 4, axis.text(value),
                                  fill=INK, text_anchor="middle", font_size=10))
    body.append(_line(left, bottom, right, bottom, MUTED))
    return height


# -- the uplift chart (an interval per segment around zero) ------------------------------------

def uplift_chart(label: str, segments: Sequence[Segment], words: Words) -> str:
    """Treatment vs holdout per segment, and the uplift with its 95% interval as an error bar."""
    bounds = [b * 100 for s in segments for b in (s.comparison.interval or ())]
    low, high = min([0.0, *bounds]), max([0.0, *bounds])
    pad = max((high - low) * 0.04, 1.0)
    ticks = _nice_ticks(low - pad, high + pad, 6)
    gutter = min(max(len(words.segment(s.name)) for s in segments) * CHAR + 12, 150)
    left, right = gutter + 92, CHART_WIDTH - 62  # room for "36% vs 23%" and "+17.5 pp"
    band, top = 30.0, 26.0
    height = top + band * len(segments) + 24

    def x_of(pp: float) -> float:
        return left + (right - left) * (pp - ticks[0]) / (ticks[-1] - ticks[0])

    body: list[str] = [
        _text(gutter, 14, words.t("axis_pair"), fill=MUTED, font_size=11),
        _text((left + right) / 2, 14, words.t("axis_uplift"), fill=MUTED,
              font_size=11, text_anchor="middle"),
        _text(CHART_WIDTH - 4, 14, words.t("uplift"), fill=MUTED, font_size=11,
              text_anchor="end"),
    ]
    for tick in ticks:
        x = x_of(tick)
        body.append(_line(x, top - 4, x, height - 20, GRID))
        body.append(_text(x, height - 6, words.pp(tick / 100, 0).split()[0] if tick else "0",
                          fill=MUTED, text_anchor="middle"))
    zero = x_of(0.0)
    body.append(_line(zero, top - 4, zero, height - 20, INK, stroke_width=1.5,
                      stroke_dasharray="4 3"))
    for i, segment in enumerate(segments):
        c = segment.comparison
        y = top + i * band + band / 2
        weight = "700" if segment.name == ALL else "400"
        body.append(_text(gutter - 8, y, words.segment(segment.name), fill=INK,
                          text_anchor="end", dominant_baseline="middle", font_weight=weight))
        body.append(_text(gutter, y, words.t("versus", a=words.pct(c.treatment_rate, 0),
                                             b=words.pct(c.holdout_rate, 0)),
                          fill=MUTED, dominant_baseline="middle"))
        if c.interval is None or c.uplift is None:
            body.append(_text(CHART_WIDTH - 4, y, words.t("no_holdout_short"), fill=MUTED,
                              text_anchor="end", dominant_baseline="middle",
                              font_style="italic"))
            continue
        lo, hi = (x_of(b * 100) for b in c.interval)
        colour = {"raised": "#047857", "lowered": "#b91c1c"}.get(c.outcome, TREATMENT_COLOUR)
        tip = (f"{words.segment(segment.name)}: {words.t('uplift')} {words.pp(c.uplift)}, "
               f"{words.t('interval')} {words.interval(c.interval)}, "
               f"p {words.p_value(c.p_value)}")
        body.append(f"<g><title>{escape(tip)}</title>")
        body.append(_line(lo, y, hi, y, colour, stroke_width=2))
        body.append(_line(lo, y - 6, lo, y + 6, colour, stroke_width=2))
        body.append(_line(hi, y - 6, hi, y + 6, colour, stroke_width=2))
        radius = 6.0 if segment.name == ALL else 4.5
        body.append(f"<circle {_attrs(cx=x_of(c.uplift * 100), cy=y, r=radius, fill=colour)}/>")
        body.append("</g>")
        body.append(_text(CHART_WIDTH - 4, y, words.pp(c.uplift), fill=INK, text_anchor="end",
                          dominant_baseline="middle", font_weight=weight))
    return _svg(CHART_WIDTH, height, label, body)


# -- one campaign -----------------------------------------------------------------------------

def _figure(caption: str, note: str, chart: str | None, empty: str) -> str:
    inner = chart if chart is not None else f'<p class="empty">{escape(empty)}</p>'
    return (f"<figure><figcaption>{escape(caption)}<small>{escape(note)}</small></figcaption>"
            f"{inner}</figure>")


def _segments(campaign: CampaignReport) -> list[Segment]:
    return [s for s in (campaign.overall, *campaign.personas) if s is not None]


def _funnel_chart(campaign: CampaignReport, words: Words) -> str | None:
    if not campaign.steps:
        return None
    columns = [("sent", SENT_COLOUR), ("bounced", BOUNCED_COLOUR), ("failed", FAILED_COLOUR),
               ("unknown", UNKNOWN_COLOUR), ("pending", PENDING_COLOUR),
               ("skipped", SKIPPED_COLOUR)]
    series = [Series(words.t(name), colour, [float(getattr(step, name))
                                             for step in campaign.steps])
              for name, colour in columns
              if name in ("sent", "failed") or any(getattr(s, name) for s in campaign.steps)]
    axis = _axis([v for s in series for v in s.values], words.count)
    return bar_chart(f"{campaign.title}: {words.t('chart_steps')}",
                     [words.step(s.step, s.to) for s in campaign.steps], series, axis,
                     horizontal=True,
                     tip=lambda category, series, value:
                     f"{category}: {words.count(value)} {series.name}")


def _persona_chart(campaign: CampaignReport, words: Words) -> str | None:
    segments = _segments(campaign)
    if not segments:
        return None
    names = {words.segment(s.name): s.comparison for s in segments}
    mailed, holdout = words.t("mailed"), words.t("holdout")

    def tip(name: str, series: Series, value: float) -> str:
        c = names[name]
        n, k = ((c.treatment_n, c.treatment_converted) if series.name == mailed
                else (c.holdout_n, c.holdout_converted))
        return words.t("tip_reached", name=name, group=series.name, k=words.count(k),
                       n=words.count(n), rate=words.pct(value))

    series = [Series(mailed, TREATMENT_COLOUR, [s.comparison.treatment_rate for s in segments]),
              Series(holdout, HOLDOUT_COLOUR, [s.comparison.holdout_rate for s in segments])]
    axis = _axis([v for s in series for v in s.values], lambda v: words.pct(v, 0), cap=1.0)
    return bar_chart(f"{campaign.title}: {words.t('chart_personas')}", list(names),
                     series, axis, horizontal=True, tip=tip)


def _uplift_figure(campaign: CampaignReport, words: Words) -> str | None:
    segments = _segments(campaign)
    if not any(s.comparison.interval is not None for s in segments):
        return None
    return uplift_chart(f"{campaign.title}: {words.t('chart_uplift')}", segments, words)


def _sends_chart(campaign: CampaignReport, words: Words) -> str | None:
    if not campaign.sends_by_day:
        return None
    counts = dict(campaign.sends_by_day)
    first = date.fromisoformat(campaign.sends_by_day[0][0])
    last = date.fromisoformat(campaign.sends_by_day[-1][0])
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    series = [Series(words.t("sent"), SENT_COLOUR, [float(counts.get(d, 0)) for d in days])]
    axis = _axis(series[0].values, words.count)
    return bar_chart(f"{campaign.title}: {words.t('chart_days')}",
                     [_day_label(words, d) for d in days], series, axis, horizontal=False,
                     tip=lambda category, series, value:
                     f"{category}: {words.count(value)} {series.name}")


def _headline(campaign: CampaignReport, words: Words) -> str:
    overall = campaign.overall
    if overall is None:
        return (f'<div class="verdict no-goal"><strong>{escape(words.t("no_goal"))}</strong>'
                f'{escape(words.t("no_goal_hint"))}</div>')
    c = overall.comparison
    if not c.treatment_n and not c.holdout_n:
        return (f'<div class="verdict no-holdout"><strong>{escape(words.t("nobody_yet"))}'
                f'</strong>{escape(words.t("nobody_yet_hint"))}</div>')
    values = {"rate1": words.pct(c.treatment_rate), "k1": words.count(c.treatment_converted),
              "n1": words.count(c.treatment_n)}
    if c.holdout_n and c.uplift is not None:
        detail = words.t("detail", rate2=words.pct(c.holdout_rate),
                         k2=words.count(c.holdout_converted), n2=words.count(c.holdout_n),
                         uplift=words.pp(c.uplift), interval=words.interval(c.interval),
                         **values)
    else:
        detail = words.t("detail_no_holdout", **values)
    verdict = words.verdict(c.outcome, c.p_value)
    verdict = verdict[:1].upper() + verdict[1:]
    detectable = campaign.detectable_line(words)
    findings = "" if detectable is None else f"<p>{escape(detectable)}</p>"
    return (f'<div class="verdict {escape(c.outcome)}"><strong>{escape(verdict)}</strong>'
            f"{escape(detail)}{findings}</div>")


def _hypothesis(campaign: CampaignReport, words: Words) -> str:
    hypothesis = campaign.model.hypothesis if campaign.model else None
    if hypothesis is None:
        return (f'<p class="hypothesis">{escape(campaign.description)}</p>'
                if campaign.description else "")
    status = campaign.hypothesis_status
    kpi = f" · {escape(words.t('kpi', kpi=hypothesis.kpi))}" if hypothesis.kpi else ""
    judged = ("" if status is None else
              f'<p class="status {escape(status)}"><b>{escape(words.t(f"status_{status}"))}'
              f"</b>: {escape(campaign.hypothesis_reason(words))}</p>")
    return (f'<div class="hypothesis"><p><b>{escape(words.t("hypothesis"))}</b>: '
            f"{escape(hypothesis.belief.strip())}</p><p class=\"meta\">"
            f"{escape(words.t('hypothesis_expects', uplift=words.pp(hypothesis.expected_uplift)))}"
            f"{kpi}</p>{judged}</div>")


def _kpis(campaign: CampaignReport, words: Words) -> str:
    items = [(campaign.enrolled, words.t("enrolled")), (campaign.treatment, words.t("mailed")),
             (campaign.holdout, words.t("holdout_share",
                                        share=words.pct(campaign.holdout_share, 0))),
             (sum(s.sent + s.bounced for s in campaign.steps), words.t("messages_sent"))]
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b>{words.count(value)}</b><span>{escape(name)}</span></div>'
        for value, name in items) + "</div>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, total: int | None = None,
           text: Sequence[int] = (0,), wrap: Sequence[int] = ()) -> str:
    """A table; `text` columns are left-aligned, `wrap` columns may break over lines.

    It scrolls sideways inside its own box where the page is narrower than the table."""

    def cell(tag: str, i: int, content: str) -> str:
        classes = [name for name, columns in (("text", text), ("wrap", wrap)) if i in columns]
        attribute = f' class="{" ".join(classes)}"' if classes else ""
        return f"<{tag}{attribute}>{escape(content)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        ('<tr class="total">' if n == total else "<tr>")
        + "".join(cell("td", i, content) for i, content in enumerate(row)) + "</tr>"
        for n, row in enumerate(rows))
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def _tables(campaign: CampaignReport, words: Words) -> str:
    keys = StepFunnel.COUNTS
    parts = [f'<div class="tables"><div class="block"><h3>{escape(words.t("chart_steps"))}</h3>',
             _table([words.t("step"), *(words.t(k) for k in keys)],
                    [[words.step(s.step, s.to), *(words.count(getattr(s, k)) for k in keys)]
                     for s in campaign.steps]), "</div>"]
    segments = _segments(campaign)
    if segments:
        rows = [s.row(words) for s in segments]
        parts += [f'<div class="block"><h3>{escape(words.t("goal", goal=campaign.goal or ""))}'
                  "</h3>",
                  _table([words.t(k) for k in Segment.HEADERS],
                         rows, total=0, text=(0, 7), wrap=(7,)), "</div>"]
    if campaign.variants:
        parts += [f'<div class="block variants"><h3>{escape(words.t("variants"))}</h3>'
                  f'<p class="note">{escape(words.t("variants_note"))}</p>',
                  _table([words.t(k) for k in VariantArm.HEADERS],
                         [arm.row(words) for arm in campaign.variants], text=(0, 1, 7),
                         wrap=(7,)), "</div>"]
    if campaign.fit:
        note = words.t("fit_note", target=words.pct(campaign.fit[0].target, 0))
        parts += [f'<div class="block fit"><h3>{escape(words.t("fit"))}</h3>'
                  f'<p class="note">{escape(note)}</p>',
                  _table(CampaignReport.fit_headers(words), [f.row(words) for f in campaign.fit],
                         total=0, text=(0, 4, 5), wrap=(5,)), "</div>"]
    if campaign.exits:
        parts += [f'<div class="block"><h3>{escape(words.t("left_sequence"))}</h3>',
                  _table([words.t("reason"), words.t("people")],
                         [[words.exit_reason(reason), words.count(n)]
                          for reason, n in sorted(campaign.exits.items())]),
                  "</div>"]
    parts.append("</div>")
    return "".join(parts)


def _campaign(campaign: CampaignReport, words: Words) -> str:
    phase = escape(campaign.phase)
    goal = campaign.goal or words.t("no_goal_short")
    charts = [
        _figure(words.t("chart_steps"), words.t("chart_steps_note"),
                _funnel_chart(campaign, words), words.t("empty_steps")),
        _figure(words.t("chart_personas"), words.t("chart_personas_note"),
                _persona_chart(campaign, words), words.t("empty_goal")),
        _figure(words.t("chart_uplift"), words.t("chart_uplift_note"),
                _uplift_figure(campaign, words), words.t("empty_holdout")),
        _figure(words.t("chart_days"), words.t("chart_days_note"),
                _sends_chart(campaign, words), words.t("empty_days")),
    ]
    return (f'<section class="card campaign" id="{escape(campaign.id)}">'
            f'<div class="campaign-head"><div><h2>{escape(campaign.title)}'
            f'<span class="badge phase-{phase}">{escape(words.phase(campaign.phase))}</span></h2>'
            f'<p class="meta">{escape(words.t("goal", goal=goal))}</p>'
            f"{_hypothesis(campaign, words)}</div>{_kpis(campaign, words)}</div>"
            f"{_headline(campaign, words)}"
            f'<div class="charts">{"".join(charts)}</div>{_tables(campaign, words)}</section>')


def _overview(report: Report, words: Words) -> str:
    rows = []
    for campaign in report.campaigns:
        c = campaign.overall.comparison if campaign.overall else None
        status = campaign.hypothesis_status
        rows.append([campaign.title, words.phase(campaign.phase), words.count(campaign.enrolled),
                     DASH if c is None else words.pct(c.treatment_rate),
                     DASH if c is None else words.pct(c.holdout_rate),
                     DASH if c is None else words.pp(c.uplift),
                     words.t("no_goal_short") if c is None else
                     words.verdict(c.outcome, c.p_value),
                     DASH if status is None else words.t(f"status_{status}")])
    return (f'<section class="card overview"><h3>{escape(words.t("at_a_glance"))}</h3>'
            + _table([words.t(k) for k in ("campaign", "phase", "enrolled", "mailed_converted",
                                           "holdout_converted", "uplift", "verdict",
                                           "hypothesis")],
                     rows, text=(0, 1, 6, 7), wrap=(0, 6)) + "</section>")


def to_html(report: Report) -> str:
    """The whole report as one HTML document that needs nothing but a browser."""
    words = report.words
    organisation = report.organisation or words.t("default_organisation")
    stamp = words.moment(datetime.fromisoformat(report.generated_at.replace("Z", "+00:00")))
    sections = "".join(_campaign(c, words) for c in report.campaigns) or (
        f'<section class="card"><p class="empty">{escape(words.t("no_campaigns"))}</p>'
        "</section>")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{words.language}"><head><meta charset="utf-8">'
        # The page may load nothing at all: only its own inline styles are allowed.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(organisation)} \u2013 {escape(words.t('report'))}</title>"
        f"<style>{CSS}</style></head><body><main>"
        f'<header class="page"><h1>{escape(organisation)}: {escape(words.t("report"))}</h1>'
        f"<p>{escape(words.t('intro', when=stamp))}</p></header>"
        f"{_overview(report, words) if report.campaigns else ''}{sections}"
        f"<footer><p>{escape(words.t('footnote'))} {escape(words.t('generated'))}</p></footer>"
        "</main></body></html>\n")
