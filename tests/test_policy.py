"""Deadline policy from config: validation and the deadlines it gives on the working-day calendar."""

import copy
import tomllib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.errors import ConfigError
from bot.tickets.calendar import WorkCalendar
from bot.tickets.policy import DeadlinePolicy, Deadlines, PolicyTable

CONFIG = tomllib.loads("""
[tickets]
warn_at_share = 0.75
check_interval_s = 60               # other [tickets] keys belong to others and are left alone

[tickets.policy.complaint]
first_response_days = 1
resolution_days = 5

[tickets.policy.question]
first_response_days = 1
resolution_days = 3

[tickets.policy.suggestion]
first_response_days = 2
resolution_days = 10

[[tickets.policy_overrides]]
intent = "complaint"
topic = "环境保护"
resolution_days = 3
""")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def table(mapping=CONFIG, **kw) -> PolicyTable:
    return PolicyTable.from_mapping(mapping, file="config.toml", **kw)


def changed(edit) -> dict:
    mapping = copy.deepcopy(CONFIG)
    edit(mapping["tickets"])
    return mapping


def test_policy_for_intents_and_topic_overrides():
    t = table()
    assert t.policy_for("complaint", None) == DeadlinePolicy(1, 5, 0.75)
    assert t.policy_for("complaint", "交通运输") == DeadlinePolicy(1, 5, 0.75)
    assert t.policy_for("complaint", "环境保护") == DeadlinePolicy(1, 3, 0.75)
    assert t.policy_for("question", "环境保护") == DeadlinePolicy(1, 3, 0.75)
    assert t.policy_for("suggestion", None) == DeadlinePolicy(2, 10, 0.75)
    assert t.policy_for("praise", "环境保护") is None
    assert t.policy_for("other", None) is None
    with pytest.raises(ValueError, match="unknown intent 'spam'"):
        t.policy_for("spam", None)


def test_overrides_as_dumped_by_the_config_model():
    """The config model dumps unset override fields as None: they keep the intent's value."""
    mapping = changed(lambda t: t["policy_overrides"].append(
        {"intent": "question", "topic": "教育文体", "first_response_days": None, "resolution_days": 8}))
    assert table(mapping).policy_for("question", "教育文体") == DeadlinePolicy(1, 8, 0.75)


def test_complaint_before_spring_festival_2026():
    cal = WorkCalendar(None)
    received = utc(2026, 2, 13, 8, 0)  # 16:00 Friday in Shanghai
    d = table().deadlines(received, "complaint", "城乡建设", cal, "Asia/Shanghai")
    assert d == Deadlines(
        first_response_due=utc(2026, 2, 14, 16, 0),  # end of the 调休 Saturday 02-14 local
        resolution_due=utc(2026, 2, 27, 16, 0),  # end of 02-27 local
        warn_at=received + (utc(2026, 2, 27, 16, 0) - received) * 0.75,
    )
    assert d.warn_at == utc(2026, 2, 24, 2, 0)  # 14 d 8 h x 0.75 = 10 d 18 h: 10:00 local, 02-24


def test_topic_override_changes_resolution_only():
    cal = WorkCalendar(None)
    received = utc(2026, 10, 9, 2, 0)  # Friday 10:00 local, after National Day
    d = table().deadlines(received, "complaint", "环境保护", cal, "Asia/Shanghai")
    assert d.first_response_due == utc(2026, 10, 10, 16, 0)  # 调休 Saturday 10-10
    assert d.resolution_due == utc(2026, 10, 13, 16, 0)  # 10-10, 10-12, 10-13
    assert received < d.warn_at < d.resolution_due


def test_no_deadlines_for_praise():
    assert table().deadlines(utc(2026, 3, 2, 1, 0), "praise", None, WorkCalendar(None), "Asia/Shanghai") is None


def test_zero_days_allowed():
    mapping = changed(lambda t: t["policy"]["question"].update(first_response_days=0, resolution_days=0))
    cal = WorkCalendar(None)
    d = table(mapping).deadlines(utc(2026, 3, 7, 1, 0), "question", None, cal, "Asia/Shanghai")
    # Saturday receipt, n=0: the end of Monday 03-09 local.
    assert d.first_response_due == d.resolution_due == utc(2026, 3, 9, 16, 0)


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        (lambda t: t["policy"].update(complain={"first_response_days": 1, "resolution_days": 5}),
         "tickets.policy.complain", "unknown intent 'complain'"),
        (lambda t: t["policy"].update(praise={"first_response_days": 1, "resolution_days": 5}),
         "tickets.policy.praise", "no ticket"),
        (lambda t: t["policy"]["complaint"].update(resolution_days=-1),
         "tickets.policy.complaint.resolution_days", "negative"),
        (lambda t: t["policy"]["complaint"].update(resolution_days=2.5),
         "tickets.policy.complaint.resolution_days", "whole number"),
        (lambda t: t["policy"]["complaint"].update(resolution_days=True),
         "tickets.policy.complaint.resolution_days", "whole number"),
        (lambda t: t["policy"]["complaint"].pop("first_response_days"),
         "tickets.policy.complaint.first_response_days", "missing"),
        (lambda t: t["policy"]["complaint"].update(resolution_day=5),
         "tickets.policy.complaint.resolution_day", "unknown key"),
        (lambda t: t["policy"]["suggestion"].update(first_response_days=11),
         "tickets.policy.suggestion.first_response_days", "more than resolution_days (10)"),
        (lambda t: t["policy"].pop("suggestion"), "tickets.policy.suggestion", "missing"),
        (lambda t: t.pop("policy"), "tickets.policy", "missing"),
        (lambda t: t.update(warn_at_share=0), "tickets.warn_at_share", "between 0 and 1"),
        (lambda t: t.update(warn_at_share=1), "tickets.warn_at_share", "between 0 and 1"),
        (lambda t: t.update(warn_at_share=1.5), "tickets.warn_at_share", "between 0 and 1"),
        (lambda t: t.update(warn_at_share=float("nan")), "tickets.warn_at_share", "between 0 and 1"),
        (lambda t: t.update(warn_at_share="0.75"), "tickets.warn_at_share", "not a number"),
        (lambda t: t.pop("warn_at_share"), "tickets.warn_at_share", "missing"),
        (lambda t: t["policy_overrides"][0].update(intent="complain"),
         "tickets.policy_overrides[0].intent", "unknown intent"),
        (lambda t: t["policy_overrides"][0].update(intent="praise"),
         "tickets.policy_overrides[0].intent", "no ticket"),
        (lambda t: t["policy_overrides"][0].pop("topic"), "tickets.policy_overrides[0].topic", "missing"),
        (lambda t: t["policy_overrides"][0].update(resolution_days=-3),
         "tickets.policy_overrides[0].resolution_days", "negative"),
        (lambda t: t["policy_overrides"][0].update(resolution_days=0),
         "tickets.policy_overrides[0].first_response_days", "more than resolution_days (0)"),
        (lambda t: t["policy_overrides"][0].pop("resolution_days"), "tickets.policy_overrides[0]",
         "overrides nothing"),
        (lambda t: t["policy_overrides"].append(dict(t["policy_overrides"][0])), "tickets.policy_overrides[1]",
         "a second override"),
        (lambda t: t["policy_overrides"][0].update(days=3), "tickets.policy_overrides[0].days", "unknown key"),
    ],
)
def test_invalid_config_names_file_key_and_reason(edit, key, reason):
    with pytest.raises(ConfigError) as caught:
        table(changed(edit))
    err = caught.value
    assert (err.file, err.key) == ("config.toml", key)
    assert reason in err.reason
    assert str(err) == f"config.toml: {key}: {err.reason}"


def test_missing_tickets_section():
    with pytest.raises(ConfigError) as caught:
        table({})
    assert caught.value.key == "tickets"


def test_override_topic_checked_against_known_topics():
    table(topics={"环境保护", "城乡建设"})
    with pytest.raises(ConfigError) as caught:
        table(topics={"城乡建设"})
    assert caught.value.key == "tickets.policy_overrides[0].topic"
    assert "unknown topic '环境保护'" in caught.value.reason


def test_warn_at_share_is_wall_clock():
    mapping = changed(lambda t: t.update(warn_at_share=0.5))
    received = utc(2026, 3, 2, 1, 0)  # Monday 09:00 local
    d = table(mapping).deadlines(received, "complaint", None, WorkCalendar(None), "Asia/Shanghai")
    assert d.resolution_due == utc(2026, 3, 9, 16, 0)  # end of Monday 03-09 local
    assert d.warn_at - received == (d.resolution_due - received) / 2
    assert d.warn_at == received + timedelta(days=3, hours=19, minutes=30)


def test_deadlines_take_any_aware_time_and_answer_in_utc():
    shanghai = timezone(timedelta(hours=8))
    received_local = datetime(2026, 2, 13, 16, 0, tzinfo=shanghai)
    d = table().deadlines(received_local, "complaint", None, WorkCalendar(None), "Asia/Shanghai")
    assert d == table().deadlines(utc(2026, 2, 13, 8, 0), "complaint", None, WorkCalendar(None), "Asia/Shanghai")
    assert all(t.tzinfo == UTC for t in (d.first_response_due, d.resolution_due, d.warn_at))


def test_naive_receipt_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        table().deadlines(datetime(2026, 2, 13, 8, 0), "complaint", None, WorkCalendar(None), "Asia/Shanghai")
