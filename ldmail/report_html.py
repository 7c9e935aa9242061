"""`ldmail report --format html`: one self-contained page with inline CSS and SVG charts.

Nothing is fetched when the page opens: no scripts, fonts, style sheets or images from
elsewhere, so the file can be mailed to management or kept as a CI artefact and still look
the same years later. Every chart is drawn here as SVG; every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

from .report import ALL, CampaignReport, Report, Segment
from .stats import MIN_EXPECTED, MIN_GROUP, Z95

# Colours: colour-blind safe pairs, readable in print.
TREATMENT_COLOUR = "#1d4ed8"
HOLDOUT_COLOUR = "#9ca3af"
SENT_COLOUR = "#0f766e"
FAILED_COLOUR = "#dc2626"
UNKNOWN_COLOUR = "#d97706"
PENDING_COLOUR = "#cbd5e1"
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
.hypothesis { margin: 10px 0 0; max-width: 680px; color: #374151; font-style: italic; }
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
.verdict.too-small, .verdict.no-holdout, .verdict.no-goal { border-color: #d97706;
                                                              background: #fffbeb; }
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
.note { color: var(--muted); font-size: 12px; }
footer { color: var(--muted); font-size: 12px; margin-top: 8px; }
@media (max-width: 820px) { .charts { grid-template-columns: 1fr; } }
@media print { body { background: #fff; } section.card { border: none; padding: 0; }
               main { padding: 0; } }
"""


# -- formatting -------------------------------------------------------------------------------

def _minus(text: str) -> str:
    return text.replace("-", "\u2212")


def _pct(value: float | None, digits: int = 1) -> str:
    return "\u2013" if value is None else f"{value * 100:.{digits}f}%"


def _pp(value: float | None) -> str:
    """A difference of two fractions as signed percentage points."""
    return "\u2013" if value is None else _minus(f"{value * 100:+.1f} pp")


def _interval(bounds: tuple[float, float] | None) -> str:
    if bounds is None:
        return "\u2013"
    return _minus(f"{bounds[0] * 100:+.1f} to {bounds[1] * 100:+.1f} pp")


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _day_label(day: str) -> str:
    parsed = date.fromisoformat(day)
    return f"{parsed.day} {parsed.strftime('%b')}"


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
    if horizontal:
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
    else:
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
    return _svg(CHART_WIDTH, height, label, body)


# -- the uplift chart (an interval per segment around zero) ------------------------------------

def uplift_chart(label: str, segments: Sequence[Segment]) -> str:
    """Treatment vs holdout per segment, and the uplift with its 95% interval as an error bar."""
    bounds = [b * 100 for s in segments for b in (s.comparison.interval or ())]
    low, high = min([0.0, *bounds]), max([0.0, *bounds])
    pad = max((high - low) * 0.04, 1.0)
    ticks = _nice_ticks(low - pad, high + pad, 6)
    gutter = min(max(len(s.name) for s in segments) * CHAR + 12, 150)
    left, right = gutter + 92, CHART_WIDTH - 62  # room for "36% vs 23%" and "+17.5 pp"
    band, top = 30.0, 26.0
    height = top + band * len(segments) + 24

    def x_of(pp: float) -> float:
        return left + (right - left) * (pp - ticks[0]) / (ticks[-1] - ticks[0])

    body: list[str] = [
        _text(gutter, 14, "mailed vs holdout", fill=MUTED, font_size=11),
        _text((left + right) / 2, 14, "uplift in percentage points, 95% interval", fill=MUTED,
              font_size=11, text_anchor="middle"),
        _text(CHART_WIDTH - 4, 14, "uplift", fill=MUTED, font_size=11, text_anchor="end"),
    ]
    for tick in ticks:
        x = x_of(tick)
        body.append(_line(x, top - 4, x, height - 20, GRID))
        body.append(_text(x, height - 6, _minus(f"{tick:+g}") if tick else "0", fill=MUTED,
                          text_anchor="middle"))
    zero = x_of(0.0)
    body.append(_line(zero, top - 4, zero, height - 20, INK, stroke_width=1.5,
                      stroke_dasharray="4 3"))
    for i, segment in enumerate(segments):
        c = segment.comparison
        y = top + i * band + band / 2
        weight = "700" if segment.name == ALL else "400"
        body.append(_text(gutter - 8, y, segment.name, fill=INK, text_anchor="end",
                          dominant_baseline="middle", font_weight=weight))
        body.append(_text(gutter, y, f"{_pct(c.treatment_rate, 0)} vs {_pct(c.holdout_rate, 0)}",
                          fill=MUTED, dominant_baseline="middle"))
        if c.interval is None or c.uplift is None:
            body.append(_text(CHART_WIDTH - 4, y, "no holdout", fill=MUTED, text_anchor="end",
                              dominant_baseline="middle", font_style="italic"))
            continue
        lo, hi = (x_of(b * 100) for b in c.interval)
        colour = {"raised": "#047857", "lowered": "#b91c1c"}.get(c.outcome, TREATMENT_COLOUR)
        p_text = "" if c.p_value is None else f", p = {c.p_value:.3f}"
        tip = f"{segment.name}: uplift {_pp(c.uplift)}, 95% interval {_interval(c.interval)}"
        body.append(f"<g><title>{escape(tip + p_text)}</title>")
        body.append(_line(lo, y, hi, y, colour, stroke_width=2))
        body.append(_line(lo, y - 6, lo, y + 6, colour, stroke_width=2))
        body.append(_line(hi, y - 6, hi, y + 6, colour, stroke_width=2))
        radius = 6.0 if segment.name == ALL else 4.5
        body.append(f"<circle {_attrs(cx=x_of(c.uplift * 100), cy=y, r=radius, fill=colour)}/>")
        body.append("</g>")
        body.append(_text(CHART_WIDTH - 4, y, _pp(c.uplift), fill=INK, text_anchor="end",
                          dominant_baseline="middle", font_weight=weight))
    return _svg(CHART_WIDTH, height, label, body)


# -- one campaign -----------------------------------------------------------------------------

def _figure(caption: str, note: str, chart: str | None, empty: str) -> str:
    inner = chart if chart is not None else f'<p class="empty">{escape(empty)}</p>'
    return (f"<figure><figcaption>{escape(caption)}<small>{escape(note)}</small></figcaption>"
            f"{inner}</figure>")


def _count_tip(category: str, series: Series, value: float) -> str:
    return f"{category}: {value:,.0f} {series.name}"


def _whole_pct(value: float) -> str:
    return _pct(value, 0)


def _funnel_chart(campaign: CampaignReport) -> str | None:
    if not campaign.steps:
        return None
    columns = [("sent", SENT_COLOUR), ("failed", FAILED_COLOUR), ("unknown", UNKNOWN_COLOUR),
               ("pending", PENDING_COLOUR)]
    series = [Series(name, colour, [float(getattr(step, name)) for step in campaign.steps])
              for name, colour in columns
              if name in ("sent", "failed") or any(getattr(s, name) for s in campaign.steps)]
    axis = _axis([v for s in series for v in s.values], _count)
    return bar_chart(f"{campaign.title}: messages per step", [s.step for s in campaign.steps],
                     series, axis, horizontal=True, tip=_count_tip)


def _persona_chart(campaign: CampaignReport) -> str | None:
    segments = [s for s in (campaign.overall, *campaign.personas) if s is not None]
    if not segments:
        return None

    def tip(name: str, series: Series, value: float) -> str:
        segment = next(s for s in segments if s.name == name)
        c = segment.comparison
        n, k = ((c.treatment_n, c.treatment_converted) if series.name == "mailed"
                else (c.holdout_n, c.holdout_converted))
        return f"{name}, {series.name}: {k} of {n} reached the goal ({_pct(value)})"

    series = [Series("mailed", TREATMENT_COLOUR, [s.comparison.treatment_rate for s in segments]),
              Series("holdout", HOLDOUT_COLOUR, [s.comparison.holdout_rate for s in segments])]
    axis = _axis([v for s in series for v in s.values], _whole_pct, cap=1.0)
    return bar_chart(f"{campaign.title}: conversion by persona", [s.name for s in segments],
                     series, axis, horizontal=True, tip=tip)


def _uplift_figure(campaign: CampaignReport) -> str | None:
    segments = [s for s in (campaign.overall, *campaign.personas) if s is not None]
    if not any(s.comparison.interval is not None for s in segments):
        return None
    return uplift_chart(f"{campaign.title}: uplift against the holdout", segments)


def _sends_chart(campaign: CampaignReport) -> str | None:
    if not campaign.sends_by_day:
        return None
    counts = dict(campaign.sends_by_day)
    first = date.fromisoformat(campaign.sends_by_day[0][0])
    last = date.fromisoformat(campaign.sends_by_day[-1][0])
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    series = [Series("sent", SENT_COLOUR, [float(counts.get(d, 0)) for d in days])]
    axis = _axis(series[0].values, _count)
    return bar_chart(f"{campaign.title}: messages sent per day", [_day_label(d) for d in days],
                     series, axis, horizontal=False, tip=_count_tip)


def _headline(campaign: CampaignReport) -> str:
    overall = campaign.overall
    if overall is None:
        return ('<div class="verdict no-goal"><strong>No goal set</strong>Add '
                "<code>goal: {event: …}</code> to the campaign to measure conversion against "
                "the holdout.</div>")
    c = overall.comparison
    if not c.treatment_n and not c.holdout_n:
        return ('<div class="verdict no-holdout"><strong>Nobody enrolled yet</strong>The '
                "figures appear after the first <code>ldmail send</code>.</div>")
    if c.holdout_n and c.uplift is not None:
        detail = (f"{_pct(c.treatment_rate)} of mailed people reached the goal "
                  f"({c.treatment_converted} of {c.treatment_n}), against "
                  f"{_pct(c.holdout_rate)} of the holdout ({c.holdout_converted} of "
                  f"{c.holdout_n}): {_pp(c.uplift)}, 95% interval {_interval(c.interval)}.")
    else:
        detail = (f"{_pct(c.treatment_rate)} of mailed people reached the goal "
                  f"({c.treatment_converted} of {c.treatment_n}); there is no holdout group, "
                  "so the effect of the mails cannot be measured.")
    if c.outcome == "too-small":
        detail += (f" A conclusion needs at least {MIN_GROUP} people and {MIN_EXPECTED} "
                   "conversions (and non-conversions) in each group.")
    verdict = c.verdict[:1].upper() + c.verdict[1:]
    return (f'<div class="verdict {escape(c.outcome)}"><strong>{escape(verdict)}</strong>'
            f"{escape(detail)}</div>")


def _kpis(campaign: CampaignReport) -> str:
    items = [(campaign.enrolled, "enrolled"), (campaign.treatment, "mailed"),
             (campaign.holdout, f"holdout ({campaign.holdout_share:.0%})"),
             (sum(s.sent for s in campaign.steps), "messages sent")]
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b>{value:,}</b><span>{escape(name)}</span></div>'
        for value, name in items) + "</div>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, total: int | None = None,
           text: Sequence[int] = (0,), wrap: Sequence[int] = ()) -> str:
    """A table; `text` columns are left-aligned, `wrap` columns may break over lines."""

    def cell(tag: str, i: int, content: str) -> str:
        classes = [name for name, columns in (("text", text), ("wrap", wrap)) if i in columns]
        attribute = f' class="{" ".join(classes)}"' if classes else ""
        return f"<{tag}{attribute}>{escape(content)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        ('<tr class="total">' if n == total else "<tr>")
        + "".join(cell("td", i, content) for i, content in enumerate(row)) + "</tr>"
        for n, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rate(converted: int, total: int) -> str:
    return f"{converted}/{total} ({converted / total:.1%})" if total else "\u2013"


def _tables(campaign: CampaignReport) -> str:
    parts = ['<div class="tables"><div><h3>Messages per step</h3>',
             _table(["step", "sent", "failed", "unknown", "pending"],
                    [[s.step, str(s.sent), str(s.failed), str(s.unknown), str(s.pending)]
                     for s in campaign.steps]), "</div>"]
    segments = [s for s in (campaign.overall, *campaign.personas) if s is not None]
    if segments:
        rows = []
        for s in segments:
            c = s.comparison
            rows.append([s.name, _rate(c.treatment_converted, c.treatment_n),
                         _rate(c.holdout_converted, c.holdout_n), _pp(c.uplift),
                         _interval(c.interval),
                         "\u2013" if c.p_value is None else f"{c.p_value:.3f}",
                         "\u2013" if s.median_days_treatment is None
                         else f"{s.median_days_treatment:g}", c.verdict])
        parts += [f"<div><h3>Goal: {escape(campaign.goal or '')}</h3>",
                  _table(["segment", "mailed", "holdout", "uplift", "95% interval", "p",
                          "median days to goal", "verdict"], rows,
                         total=0, text=(0, 7), wrap=(7,)), "</div>"]
    if campaign.exits:
        parts += ["<div><h3>Left the sequence</h3>",
                  _table(["reason", "people"],
                         [[reason, str(n)] for reason, n in sorted(campaign.exits.items())]),
                  "</div>"]
    parts.append("</div>")
    return "".join(parts)


def _campaign(campaign: CampaignReport) -> str:
    phase = escape(campaign.phase)
    goal = campaign.goal or "none"
    description = (f'<p class="hypothesis">{escape(campaign.description)}</p>'
                   if campaign.description else "")
    charts = [
        _figure("Messages per step", "sent and failed per step, in sequence order",
                _funnel_chart(campaign), "No steps."),
        _figure("Conversion by persona", "share who reached the goal: mailed vs holdout",
                _persona_chart(campaign), "No goal set, so no conversion to show."),
        _figure("Uplift against the holdout",
                "mailed minus holdout, with the 95% interval; left of 0 means no gain",
                _uplift_figure(campaign), "Nothing to compare: no holdout members yet."),
        _figure("Messages sent per day", "every calendar day between the first and last send",
                _sends_chart(campaign), "No messages sent yet."),
    ]
    return (f'<section class="card campaign" id="{escape(campaign.id)}">'
            f'<div class="campaign-head"><div><h2>{escape(campaign.title)}'
            f'<span class="badge phase-{phase}">{phase}</span></h2>'
            f'<p class="meta">{escape(campaign.id)} · goal: {escape(goal)}</p>{description}'
            f"</div>{_kpis(campaign)}</div>{_headline(campaign)}"
            f'<div class="charts">{"".join(charts)}</div>{_tables(campaign)}</section>')


def _overview(report: Report) -> str:
    rows = []
    for campaign in report.campaigns:
        c = campaign.overall.comparison if campaign.overall else None
        rows.append([campaign.title, campaign.phase, str(campaign.enrolled),
                     "\u2013" if c is None else _pct(c.treatment_rate),
                     "\u2013" if c is None else _pct(c.holdout_rate),
                     "\u2013" if c is None else _pp(c.uplift),
                     "no goal set" if c is None else c.verdict])
    return ('<section class="card overview"><h3>At a glance</h3>'
            + _table(["campaign", "phase", "enrolled", "mailed converted", "holdout converted",
                      "uplift", "verdict"], rows, text=(0, 1, 6), wrap=(0, 6)) + "</section>")


def to_html(report: Report) -> str:
    """The whole report as one HTML document that needs nothing but a browser."""
    organisation = report.organisation or "Learning campaigns"
    stamp = report.generated_at.replace("T", " ").replace("Z", " UTC")
    sections = "".join(_campaign(c) for c in report.campaigns) or (
        '<section class="card"><p class="empty">No campaigns in this report.</p></section>')
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # The page may load nothing at all: only its own inline styles are allowed.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(organisation)} \u2013 campaign report</title>"
        f"<style>{CSS}</style></head><body><main>"
        f'<header class="page"><h1>{escape(organisation)}: campaign report</h1>'
        f"<p>Did the drip campaigns move people to their goal, compared with a holdout group "
        f"that got no mail? Figures as of {escape(stamp)}.</p></header>"
        f"{_overview(report) if report.campaigns else ''}{sections}"
        "<footer><p>Mailed: enrolled people in the treatment group; holdout: a deterministic "
        "control group that is never mailed. Uplift: mailed minus holdout conversion, in "
        f"percentage points; interval: 95% Wald (z = {Z95:.2f}, unpooled); p: two-sided "
        f"two-proportion z-test (pooled). Below {MIN_GROUP} people or {MIN_EXPECTED} "
        "conversions (or non-conversions) in a group the report draws no conclusion. "
        "Generated by ldmail.</p></footer>"
        "</main></body></html>\n")
