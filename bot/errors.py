"""Domain errors. Every error a user can cause says what went wrong and where."""


class GovbotError(Exception):
    """Base of every error govbot raises on purpose."""


class ConfigError(GovbotError):
    """A configuration value is wrong: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str):
        self.file, self.key, self.reason = str(file), key, reason
        super().__init__(f"{self.file}: {key}: {reason}")


class NotFound(GovbotError):
    """A named object does not exist."""


class PermissionDenied(GovbotError):
    """The acting user may not do this (wrong role, own draft, second stage ...)."""


class InvalidState(GovbotError):
    """The object is not in a state that allows this action."""


class CheckFailed(GovbotError):
    """Pre-publish or pre-send checks failed; carries the list of problems."""

    def __init__(self, problems: list):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))
