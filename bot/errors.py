"""Domain errors and the one catalogue of what people read when something goes wrong.

Raise with a stable code from `CATALOGUE` and the values its text needs:

    raise PermissionDenied("post.self_review", user="xuanchuan", post_id=1)

What the console, the CLI and the API use (nothing else translates error text):

    exc.code          the stable code ("post.self_review"); on a PlatformError `code` is the platform's own
                      code (45009) and `exc.error_code` the catalogue's ("platform.rejected")
    error_code(exc)   the catalogue code of any exception (unexpected ones: "internal")
    exc.params        the values in the text
    exc.message_zh    the Chinese text for people; message_zh(exc) for any exception
    str(exc)          the English text, for logs
    text_zh(code, **params) / text_en(...)   one catalogue entry (check problems, states)
    platform_zh(platform, code, message)     a platform's error explained in Chinese, with what to do

The texts themselves live in bot/error_texts.py, by area.
"""

from __future__ import annotations

from typing import Any

from bot.error_texts import CATALOGUE, PLATFORM_CODES, PLATFORM_FALLBACK


class _Keep(dict):
    """Format values: a value the raise site did not give shows as its {name}, not a KeyError."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, params: dict[str, Any]) -> str:
    return template.format_map(_Keep(params))


def text_zh(code: str, **params: Any) -> str:
    """The Chinese text of a catalogue entry; an unknown code shows as itself (a test keeps that from happening)."""
    entry = CATALOGUE.get(code)
    return _fill(entry[0], params) if entry else code


def text_en(code: str, **params: Any) -> str:
    entry = CATALOGUE.get(code)
    return _fill(entry[1], params) if entry else code


class GovbotError(Exception):
    """Base of every error govbot raises on purpose: a catalogue code and the values its text needs."""

    default_code = "error"

    def __init__(self, code: str | None = None, /, **params: Any):
        if code is None or code in CATALOGUE:
            self.code, self.params = code or self.default_code, params
        else:
            # Prose instead of a code (an older raise site): kept word for word in both languages.
            self.code, self.params = self.default_code, {**params, "text": code}
        super().__init__(self.message_en)

    @property
    def error_code(self) -> str:
        return self.code

    @property
    def message_en(self) -> str:
        if "text" in self.params and self.code == self.default_code:
            return str(self.params["text"])
        return text_en(self.code, **self.params)

    @property
    def message_zh(self) -> str:
        if "text" in self.params and self.code == self.default_code:
            return str(self.params["text"])
        return text_zh(self.code, **self.params)


class ConfigError(GovbotError):
    """A configuration value is wrong: names the file, the key and the reason."""

    default_code = "config.invalid"

    def __init__(self, file: str, key: str, reason: str):
        self.file, self.key, self.reason = str(file), key, reason
        self.others: list[ConfigError] = []  # further problems found in the same check (`govbot check-config`)
        super().__init__("config.invalid", file=self.file, key=key, reason=reason)

    @classmethod
    def of(cls, problems: list[ConfigError]) -> ConfigError:
        """The first problem, carrying the rest, so one check reports every problem."""
        first = problems[0]
        first.others = list(problems[1:])
        return first

    @property
    def problems(self) -> list[ConfigError]:
        return [self, *self.others]


class NotFound(GovbotError):
    """A named object does not exist."""

    default_code = "not_found"


class PermissionDenied(GovbotError):
    """The acting user may not do this (wrong role, own draft, second stage ...)."""

    default_code = "permission_denied"


class InvalidState(GovbotError):
    """The object is not in a state that allows this action."""

    default_code = "invalid_state"


class CheckFailed(GovbotError):
    """Pre-publish or pre-send checks failed; carries the list of problems (each with its own code)."""

    default_code = "check.failed"

    def __init__(self, problems: list):
        self.problems = list(problems)
        super().__init__("check.failed", count=len(self.problems))

    @property
    def message_en(self) -> str:
        return "; ".join(str(p) for p in self.problems)

    @property
    def message_zh(self) -> str:
        return "；".join(getattr(p, "located_zh", str(p)) for p in self.problems)


def platform_zh(platform: str, code: str | int | None, message: str) -> str:
    """A platform's error for people: what it means and what to do, with the platform's own code and words."""
    meaning, todo = PLATFORM_CODES.get((platform, str(code)), PLATFORM_FALLBACK)
    name = text_zh(f"platform.name.{platform}")
    raw = f"{code}：{message}" if code is not None else message
    return f"{name}：{meaning}。{todo}（平台返回 {raw}）"


def error_code(exc: BaseException) -> str:
    return exc.error_code if isinstance(exc, GovbotError) else "internal"


def message_zh(exc: BaseException) -> str:
    """What a person reads about any exception: the catalogue's Chinese, never a Python message."""
    if isinstance(exc, GovbotError):
        return exc.message_zh
    return text_zh("internal")
