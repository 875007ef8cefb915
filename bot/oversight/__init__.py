"""Oversight for the transparency office (政务公开办): the daily digest of unanswered messages, its
delivery (e-mail, WeCom group robot) and the inspection-rate reports (月度检查记录表)."""
