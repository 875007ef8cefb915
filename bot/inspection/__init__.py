"""Inspection readiness (迎检): the national checklist evaluated per account, the 自查报告 and the 年度报表."""
