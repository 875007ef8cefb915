"""Answer deadlines per message intent (and topic) from config, in working days (工作日).

Config shape (the [tickets] part of the config TOML; other keys under [tickets] are left alone):

    [tickets]
    warn_at_share = 0.75            # warn when this share of the time to resolution has passed
    [tickets.policy.complaint]      # 投诉/举报; also question (咨询) and suggestion (建议)
    first_response_days = 1         # 首次响应
    resolution_days = 5             # 办结时限
    [[tickets.policy_overrides]]    # optional, per intent and topic
    intent = "complaint"
    topic = "环境保护"
    resolution_days = 3

Praise (表扬/感谢) and other messages make no ticket, so they have no policy. Day counts follow
`WorkCalendar` semantics: due by the end of the n-th working day after the day of receipt.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.errors import ConfigError
from bot.tickets.calendar import WorkCalendar

TICKET_INTENTS = ("complaint", "question", "suggestion")
NO_TICKET_INTENTS = ("praise", "other")
_DAY_KEYS = ("first_response_days", "resolution_days")


@dataclass(frozen=True)
class DeadlinePolicy:
    first_response_days: int
    resolution_days: int
    warn_at_share: float


@dataclass(frozen=True)
class Deadlines:
    """Aware UTC, exclusive: an answer is on time when it is before the deadline."""

    first_response_due: datetime
    resolution_due: datetime
    warn_at: datetime


@dataclass(frozen=True)
class PolicyTable:
    by_intent: Mapping[str, DeadlinePolicy]
    by_intent_topic: Mapping[tuple[str, str], DeadlinePolicy]

    @classmethod
    def from_mapping(
        cls, d: Mapping[str, Any], *, file: str, topics: Collection[str] | None = None
    ) -> PolicyTable:
        """Validate the whole config mapping's [tickets] part; errors are ConfigError(file, key, reason).

        With `topics`, an override naming a topic not among them is refused too.
        """
        tickets = d.get("tickets")
        if not isinstance(tickets, Mapping):
            raise ConfigError(file, "tickets", "missing: needs warn_at_share and [tickets.policy.<intent>] tables")
        share = _share(tickets.get("warn_at_share"), file=file, key="tickets.warn_at_share")

        policies = tickets.get("policy")
        if not isinstance(policies, Mapping):
            raise ConfigError(file, "tickets.policy", f"missing: needs a table for each of {', '.join(TICKET_INTENTS)}")
        by_intent: dict[str, DeadlinePolicy] = {}
        for intent, entry in policies.items():
            key = f"tickets.policy.{intent}"
            _check_intent(intent, file=file, key=key)
            if not isinstance(entry, Mapping):
                raise ConfigError(file, key, "must be a table with first_response_days and resolution_days")
            for k in entry:
                if k not in _DAY_KEYS:
                    raise ConfigError(file, f"{key}.{k}", f"unknown key; expected {' and '.join(_DAY_KEYS)}")
            days = {}
            for k in _DAY_KEYS:
                if entry.get(k) is None:
                    raise ConfigError(file, f"{key}.{k}", "missing: a number of working days")
                days[k] = _days(entry[k], file=file, key=f"{key}.{k}")
            by_intent[intent] = _policy(days, share, file=file, key=key)
        for intent in TICKET_INTENTS:
            if intent not in by_intent:
                raise ConfigError(file, f"tickets.policy.{intent}",
                                  "missing: every complaint, question and suggestion needs deadlines")

        overrides = tickets.get("policy_overrides", [])
        if overrides is None:
            overrides = []
        if not isinstance(overrides, list):
            raise ConfigError(file, "tickets.policy_overrides", "must be a list of [[tickets.policy_overrides]] tables")
        by_intent_topic: dict[tuple[str, str], DeadlinePolicy] = {}
        for i, entry in enumerate(overrides):
            key = f"tickets.policy_overrides[{i}]"
            if not isinstance(entry, Mapping):
                raise ConfigError(file, key, "must be a table with intent, topic and day counts")
            for k in entry:
                if k not in ("intent", "topic", *_DAY_KEYS):
                    raise ConfigError(file, f"{key}.{k}",
                                      f"unknown key; expected intent, topic, {', '.join(_DAY_KEYS)}")
            intent = entry.get("intent")
            if not isinstance(intent, str):
                raise ConfigError(file, f"{key}.intent", f"missing: one of {', '.join(TICKET_INTENTS)}")
            _check_intent(intent, file=file, key=f"{key}.intent")
            topic = entry.get("topic")
            if not isinstance(topic, str) or not topic.strip():
                raise ConfigError(file, f"{key}.topic", "missing: the topic this override applies to")
            if topics is not None and topic not in topics:
                raise ConfigError(file, f"{key}.topic", f"unknown topic {topic!r}; known: {', '.join(sorted(topics))}")
            if (intent, topic) in by_intent_topic:
                raise ConfigError(file, key, f"a second override for intent {intent!r} and topic {topic!r}")
            base = by_intent[intent]
            days = {"first_response_days": base.first_response_days, "resolution_days": base.resolution_days}
            given = [k for k in _DAY_KEYS if entry.get(k) is not None]
            if not given:
                raise ConfigError(file, key, f"overrides nothing: give {' and/or '.join(_DAY_KEYS)}")
            for k in given:
                days[k] = _days(entry[k], file=file, key=f"{key}.{k}")
            by_intent_topic[(intent, topic)] = _policy(days, share, file=file, key=key)
        return cls(by_intent=by_intent, by_intent_topic=by_intent_topic)

    def policy_for(self, intent: str, topic: str | None) -> DeadlinePolicy | None:
        """The policy for a message; None for praise and other (no ticket)."""
        if intent in NO_TICKET_INTENTS:
            return None
        if intent not in TICKET_INTENTS:
            raise ValueError(f"unknown intent {intent!r}; expected one of {', '.join(TICKET_INTENTS + NO_TICKET_INTENTS)}")
        if topic is not None and (intent, topic) in self.by_intent_topic:
            return self.by_intent_topic[(intent, topic)]
        return self.by_intent[intent]

    def deadlines(
        self, received: datetime, intent: str, topic: str | None, calendar: WorkCalendar, tz: str | tzinfo
    ) -> Deadlines | None:
        """Deadlines (aware UTC) for a message received at `received` (aware); None when no ticket.

        warn_at is a share of the wall-clock time from receipt to the resolution deadline, so it
        can fall on a night or a holiday; whoever sends the warning decides when to deliver it.
        """
        policy = self.policy_for(intent, topic)
        if policy is None:
            return None
        first = calendar.due_at_utc(received, policy.first_response_days, tz)
        resolution = calendar.due_at_utc(received, policy.resolution_days, tz)
        received_utc = received.astimezone(UTC)
        warn_at = received_utc + (resolution - received_utc) * policy.warn_at_share
        return Deadlines(first_response_due=first, resolution_due=resolution, warn_at=warn_at)


def _check_intent(intent: str, *, file: str, key: str) -> None:
    if intent in NO_TICKET_INTENTS:
        raise ConfigError(file, key, f"{intent} messages make no ticket, so they take no deadline")
    if intent not in TICKET_INTENTS:
        raise ConfigError(file, key, f"unknown intent {intent!r}; expected one of {', '.join(TICKET_INTENTS)}")


def _days(value: Any, *, file: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(file, key, f"{value!r} is not a whole number of working days")
    if value < 0:
        raise ConfigError(file, key, f"{value} is negative; use 0 for the same working day")
    return value


def _share(value: Any, *, file: str, key: str) -> float:
    if value is None:
        raise ConfigError(file, key, "missing: a share between 0 and 1, e.g. 0.75")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(file, key, f"{value!r} is not a number")
    if not 0 < value < 1:
        raise ConfigError(file, key, f"{value} must be between 0 and 1 (exclusive), e.g. 0.75")
    return float(value)


def _policy(days: Mapping[str, int], share: float, *, file: str, key: str) -> DeadlinePolicy:
    first, resolution = days["first_response_days"], days["resolution_days"]
    if first > resolution:
        raise ConfigError(file, f"{key}.first_response_days",
                          f"{first} is more than resolution_days ({resolution}): "
                          "the first response cannot be due after the resolution")
    return DeadlinePolicy(first_response_days=first, resolution_days=resolution, warn_at_share=share)
