"""Charts (matplotlib PNG) and the HTML page of the monthly inspection report (月度检查记录表).

Charts are drawn with the object API on the Agg backend (no display, no pyplot global state) and
embedded as data URIs, so the HTML file stands alone and can be mailed. Labels are Chinese when the
machine has a CJK font (`fc-list :lang=zh`); without one, matplotlib would draw empty boxes, so the
charts switch to English titles and label accounts by number (#id, the 编号 column of the table).
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")

from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402
from loguru import logger  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bot.oversight.reports import CSV_HEADER, AccountRow, Report, conclusions, csv_rows, pct  # noqa: E402
from bot.resources import package_dir  # noqa: E402

TEMPLATES = package_dir("oversight", "templates")
# More bars than this make a chart unreadable: show the worst ones.
MAX_BARS = 30


# Simplified Chinese faces, best first. A .ttc of Noto CJK holds the JP, KR, SC, TC and HK faces; the
# first face of the file (JP) draws some characters in Japanese forms, so the SC face is named.
PREFERRED_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Micro Hei",
                   "WenQuanYi Zen Hei", "Noto Serif CJK SC")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed Simplified Chinese font, registered with matplotlib; else None."""
    if shutil.which("fc-list") is None:
        return None
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("fc-list failed ({}): charts will use ASCII labels", e)
        return None
    files = {line.split(":")[0].strip() for line in out.splitlines() if line.strip()}
    for path in sorted(files):
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):
            continue
    names = {f.name for f in font_manager.fontManager.ttflist if f.fname in files}
    for name in PREFERRED_FONTS:
        if name in names:
            return name
    sc = sorted(n for n in names if n.endswith(" SC"))
    return sc[0] if sc else (sorted(names)[0] if names else None)


def cut_note(shown: int, total: int, labels: Labels, what: str) -> str:
    """Said on the chart when not every account fits: which ones are drawn, out of how many."""
    if shown >= total:
        return ""
    return labels.text(f"（{what}的 {shown} 个，共 {total} 个账号，其余见表格）", f" ({shown} of {total} accounts)")


@dataclass(frozen=True)
class Labels:
    cjk: bool

    def account(self, row: AccountRow) -> str:
        return row.name if self.cjk else f"#{row.account_id}"

    def text(self, zh: str, en: str) -> str:
        return zh if self.cjk else en


def _figure(rows: int) -> Figure:
    return Figure(figsize=(8.5, max(2.2, 0.9 + 0.3 * rows)), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def silence_figure(report: Report, labels: Labels) -> Figure:
    """Longest silence and days since the last post per account, with the warning and limit lines.

    An account that never posted has no gap to draw: its row says so instead of showing 0 days.
    """
    def worst(r: AccountRow) -> float:
        if r.figures.days_since_last_post is None and r.figures.longest_silence_days is None:
            return float("inf")  # never posted: the worst case, listed first
        return max(r.figures.longest_silence_days or 0, r.figures.days_since_last_post or 0)

    ranked = sorted(report.rows, key=worst, reverse=True)
    rows = ranked[:MAX_BARS][::-1]
    fig = _figure(len(rows))
    ax = fig.add_subplot()
    y = list(range(len(rows)))
    known = [(k, r) for k, r in zip(y, rows, strict=True) if r.figures.longest_silence_days is not None]
    ax.barh([k for k, _ in known], [r.figures.longest_silence_days for _, r in known], color="#9bb7d4",
            label=labels.text("最长未更新天数", "longest silence (days)"))
    dots = [(k, r) for k, r in zip(y, rows, strict=True) if r.figures.days_since_last_post is not None]
    ax.scatter([r.figures.days_since_last_post for _, r in dots], [k for k, _ in dots], color="#1f3b73", zorder=3,
               s=14, label=labels.text("距今天数", "days since last post"))
    for k, r in zip(y, rows, strict=True):
        if r.figures.days_since_last_post is None and r.figures.longest_silence_days is None:
            ax.text(0.3, k, labels.text("从未发布（无数据）", "never posted (no data)"), va="center", fontsize=8,
                    color="#b00020")
    ax.axvline(report.limit_days, color="#b00020", linestyle="--",
               label=labels.text(f"{report.limit_days} 天限值", f"{report.limit_days}-day limit"))
    ax.axvline(report.warn_days, color="#c77700", linestyle=":",
               label=labels.text(f"{report.warn_days} 天提醒", f"{report.warn_days}-day warning"))
    ax.set_yticks(y, [labels.account(r) for r in rows], fontsize=8)
    ax.set_xlabel(labels.text("天", "days"))
    ax.set_title(labels.text("更新间隔", "Update gaps") + cut_note(len(rows), len(report.rows), labels, "间隔最长"))
    fig.legend(fontsize=8, loc="outside lower center", ncol=4)
    return fig


def silence_chart(report: Report, labels: Labels) -> bytes:
    return _png(silence_figure(report, labels))


def rates_figure(report: Report, labels: Labels) -> Figure | None:
    """Reply rate and on-time rates per account (the lowest first), in percent; a rate with no
    tickets to count is written as 无数据, not drawn as 0 %."""
    rows = [r for r in report.rows if r.figures.need_answer]
    if not rows:
        return None
    total = len(rows)
    rows = sorted(rows, key=lambda r: (r.figures.reply_rate or 0, r.figures.resolution_on_time_rate or 0))[:MAX_BARS]
    rows = rows[::-1]
    fig = _figure(len(rows) * 1.6)
    ax = fig.add_subplot()
    h = 0.27
    series = ((labels.text("回复率", "reply rate"), lambda f: f.reply_rate, "#1f3b73"),
              (labels.text("按时回复率", "first answer on time"), lambda f: f.first_response_on_time_rate, "#4f86c6"),
              (labels.text("按时办结率", "resolved on time"), lambda f: f.resolution_on_time_rate, "#9bb7d4"))
    for i, (name, get, colour) in enumerate(series):
        ys = [k + (1 - i) * h for k in range(len(rows))]
        values = [get(r.figures) for r in rows]
        ax.barh([yy for yy, v in zip(ys, values, strict=True) if v is not None],
                [v * 100 for v in values if v is not None], height=h, color=colour, label=name)
        for yy, v in zip(ys, values, strict=True):
            if v is None:
                ax.text(1, yy, labels.text("无数据", "no data"), va="center", fontsize=6, color="#6b7685")
    ax.set_yticks(list(range(len(rows))), [labels.account(r) for r in rows], fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    ax.set_title(labels.text("回复率与按时率", "Reply and on-time rates")
                 + cut_note(len(rows), total, labels, "回复率最低"))
    fig.legend(fontsize=8, loc="outside lower center", ncol=4)
    return fig


def rates_chart(report: Report, labels: Labels) -> bytes | None:
    fig = rates_figure(report, labels)
    return None if fig is None else _png(fig)


def response_chart(report: Report, labels: Labels) -> bytes | None:
    """Median and 90th-percentile response time per account (the slowest first), in hours."""
    rows = [r for r in report.rows if r.figures.response_hours_p90 is not None]
    if not rows:
        return None
    total = len(rows)
    rows = sorted(rows, key=lambda r: r.figures.response_hours_p90, reverse=True)[:MAX_BARS][::-1]
    fig = _figure(len(rows))
    ax = fig.add_subplot()
    y = list(range(len(rows)))
    ax.barh(y, [r.figures.response_hours_p90 for r in rows], color="#9bb7d4",
            label=labels.text("90% 响应时长", "90th percentile"))
    ax.barh(y, [r.figures.response_hours_median for r in rows], color="#1f3b73", height=0.45,
            label=labels.text("中位响应时长", "median"))
    ax.set_yticks(y, [labels.account(r) for r in rows], fontsize=8)
    ax.set_xlabel(labels.text("小时", "hours"))
    ax.set_title(labels.text("响应时长", "Response time") + cut_note(len(rows), total, labels, "最慢"))
    fig.legend(fontsize=8, loc="outside lower center", ncol=4)
    return _png(fig)


def report_charts(report: Report) -> list[tuple[str, bytes]]:
    """(title, PNG) of each chart the report has data for."""
    font = cjk_font()
    labels = Labels(cjk=font is not None)
    with matplotlib.rc_context({"font.family": [font, "sans-serif"] if font else ["sans-serif"],
                                "axes.unicode_minus": False}):
        charts = [("更新间隔", silence_chart(report, labels)), ("回复率与按时率", rates_chart(report, labels)),
                  ("响应时长", response_chart(report, labels))]
    return [(title, png) for title, png in charts if png is not None]


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def report_html(report: Report, *, charts: bool = True) -> str:
    """The inspection record as one self-contained HTML page (tables, charts as data URIs, conclusions)."""
    images = [(title, "data:image/png;base64," + base64.b64encode(png).decode())
              for title, png in (report_charts(report) if charts else [])]
    return _env.get_template("report.html").render(
        r=report, header=CSV_HEADER, rows=csv_rows(report), over=[row.figures.over_limit for row in report.rows],
        ids=[row.account_id for row in report.rows], conclusions=conclusions(report), images=images, pct=pct,
        ascii_labels=charts and cjk_font() is None)
