"""The printable monthly inspection record (月度检查记录表) as a Word document (python-docx).

A4 landscape so the per-account table fits; 宋体 for Chinese text (present on officers' Windows
machines; Word substitutes a similar face elsewhere); the charts as pictures; a signature line for
the inspector, as paper inspection records have.
"""

from __future__ import annotations

import io

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

from bot.oversight.charts import report_charts
from bot.oversight.reports import CSV_HEADER, Report, conclusions, csv_rows, pct

# The columns of the record sheet: those inspections ask for (the full set is in the CSV).
RECORD_COLUMNS = ("账号名称", "平台", "本月发布数", "最近更新日期", "距今天数", "最长未更新天数", "是否超过14天",
                  "留言/评论数", "需答复数", "回复率", "按时回复率", "按时办结率", "积压")
FONT = "宋体"


def _font(run_or_style, size: float | None = None, bold: bool | None = None) -> None:
    font = run_or_style.font
    font.name = FONT
    if size is not None:
        font.size = Pt(size)
    if bold is not None:
        font.bold = bold
    element = run_or_style.element if hasattr(run_or_style, "element") else run_or_style._element
    rpr = element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), FONT)


def _table(doc, header: list[str], rows: list[list[str]], size: float = 8) -> None:
    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = ""
        _font(cell.paragraphs[0].add_run(text), size, bold=True)
    for row in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = ""
            _font(cell.paragraphs[0].add_run(str(text)), size)


def record_docx(report: Report, *, charts: bool = True) -> bytes:
    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Cm(29.7), Cm(21.0)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(1.6))
    _font(doc.styles["Normal"], 10.5)

    title = doc.add_paragraph()
    title.alignment = 1
    _font(title.add_run(f"{report.scope.title} 政务新媒体月度检查记录表（{report.period_label}）"), 16, bold=True)
    meta = doc.add_paragraph()
    _font(meta.add_run(f"统计区间 {report.start:%Y-%m-%d} 至 {report.end:%Y-%m-%d}（不含末日），统计截至 "
                       f"{report.as_of:%Y-%m-%d %H:%M}；账号 {len(report.rows)} 个；更新间隔限值 {report.limit_days} 天。"), 9)

    _font(doc.add_paragraph().add_run("一、检查结论"), 12, bold=True)
    for line in conclusions(report):
        _font(doc.add_paragraph(style="List Bullet").add_run(line), 10.5)

    t = report.total
    _font(doc.add_paragraph().add_run("二、汇总"), 12, bold=True)
    _table(doc, ["本月发布数", "留言/评论数", "需答复", "已答复", "回复率", "按时回复率", "按时办结率", "积压"],
           [[t.posts, t.received, t.need_answer, t.replied, pct(t.reply_rate), pct(t.first_response_on_time_rate),
             pct(t.resolution_on_time_rate), t.backlog]], size=9)

    _font(doc.add_paragraph().add_run("三、分账号检查记录"), 12, bold=True)
    index = [CSV_HEADER.index(c) for c in RECORD_COLUMNS]
    _table(doc, list(RECORD_COLUMNS), [[row[i] for i in index] for row in csv_rows(report)])

    if report.departments:
        _font(doc.add_paragraph().add_run("四、各承办部门"), 12, bold=True)
        _table(doc, ["承办部门", "工单", "按时首次答复", "首次答复超期", "按时办结", "办结超期", "积压"],
               [[d.department, d.tickets, d.first_on_time, d.first_late, d.resolution_on_time, d.resolution_late,
                 d.backlog] for d in report.departments], size=9)

    if charts:
        for name, png in report_charts(report):
            _font(doc.add_paragraph().add_run(name), 11, bold=True)
            doc.add_picture(io.BytesIO(png), width=Cm(22))

    sign = doc.add_paragraph()
    sign.paragraph_format.space_before = Pt(18)
    _font(sign.add_run("检查人（签字）：____________　　审核人（签字）：____________　　检查日期：______年____月____日"), 11)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
