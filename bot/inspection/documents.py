"""The 自查报告 and the 年度报表 as documents: HTML (Jinja) and DOCX (python-docx), same content."""

from __future__ import annotations

import io
from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.inspection.evaluate import STATUS_ZH
from bot.inspection.selfcheck import ANNUAL_HEADER, SelfCheck
from bot.oversight.reports import PLATFORM_ZH

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(("html",)))
FONT = "宋体"  # what offices' documents use; Word substitutes a CJK face where it is missing


def title_of(sc: SelfCheck) -> str:
    return f"{sc.report.scope.name}政务新媒体自查报告（{sc.report.period_label}）"


def selfcheck_html(sc: SelfCheck) -> str:
    return _env.get_template("selfcheck.html").render(sc=sc, title=title_of(sc), STATUS_ZH=STATUS_ZH,
                                                      PLATFORM_ZH=PLATFORM_ZH)


def _document() -> Document:
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(11)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), FONT)
    return doc


def _table(doc: Document, header: list[str] | tuple[str, ...], rows: list[list[str]]) -> None:
    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = text
        for run in cell.paragraphs[0].runs:
            run.bold = True
    for row in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = str(text)


def _bytes(doc: Document) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def selfcheck_docx(sc: SelfCheck) -> bytes:
    doc = _document()
    heading = doc.add_heading(title_of(sc), level=0)
    heading.alignment = WD_ALIGN_PARAGRAPH.CENTER
    r = sc.report
    doc.add_paragraph(f"检查范围：{r.scope.title}；检查周期：{r.period_label}；数据截至 {r.as_of:%Y-%m-%d %H:%M}；"
                      f"依据：{sc.checklist.source}。本报告数据由系统根据平台记录自动计算。")
    doc.add_heading("一、基本情况", level=1)
    _table(doc, ("项目", "情况"), [list(kv) for kv in sc.overview()])
    doc.add_heading("二、检查发现的问题", level=1)
    for line in sc.findings_text():
        doc.add_paragraph(line, style="List Bullet")
    doc.add_heading("各账号检查结果", level=2)
    header = ["账号", "平台", "结论", *[i.name for i in sc.checklist.indicators]]
    rows = [[s.facts.name, PLATFORM_ZH.get(s.facts.platform, s.facts.platform), s.overall_zh,
             *[res.status_zh for res in s.results]] for s in sc.statuses]
    _table(doc, header, rows)
    evidence = [(s.facts.name, res) for s in sc.statuses for res in s.results if res.status in ("fail", "risk")]
    if evidence:
        doc.add_heading("问题明细", level=2)
        for name, res in evidence:
            doc.add_paragraph(f"{name}｜{res.indicator.name}｜{res.status_zh}：{res.summary}", style="List Bullet")
            for e in res.evidence:
                doc.add_paragraph(e.text, style="List Bullet 2")
    doc.add_heading("三、整改情况", level=1)
    if sc.rectifications:
        _table(doc, ("账号", "问题", "发现日期", "整改措施", "完成日期", "责任人"),
               [[name, r.problem, r.found_on.isoformat(), r.measure or "整改中",
                 r.fixed_on.isoformat() if r.fixed_on else "未完成", r.fixed_by or "—"]
                for r, name in sc.rectifications])
    else:
        doc.add_paragraph("本期未发现需要整改的问题。")
    doc.add_heading("四、关停整合建议", level=1)
    if sc.merge:
        _table(doc, ("账号", "平台", "每 30 天发布（篇）", "每 30 天收到留言（条）"),
               [[m.name, PLATFORM_ZH.get(m.platform, m.platform), f"{m.posts_per_30:g}", f"{m.messages_per_30:g}"]
                for m in sc.merge])
        doc.add_paragraph("以上账号更新和互动均偏少，建议评估后关停或整合。")
    else:
        doc.add_paragraph("本期没有更新和互动均偏少、建议关停整合的账号。")
    return _bytes(doc)


def annual_docx(rows: list[list[str]], *, year: str, scope_name: str) -> bytes:
    doc = _document()
    heading = doc.add_heading(f"{scope_name}政务新媒体工作年度报表（{year} 年度）", level=0)
    heading.alignment = WD_ALIGN_PARAGRAPH.CENTER
    doc.add_paragraph("数据由系统根据平台记录自动计算；“需人工填写”的项目平台接口不提供，请据实填写。")
    _table(doc, ANNUAL_HEADER, rows)
    return _bytes(doc)
