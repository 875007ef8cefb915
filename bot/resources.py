"""Where govbot's own data lives: rules, migrations, templates and static files.

In a checkout (and an editable install) `rules/` and `migrations/` sit at the top of the repository;
the wheel carries them as `bot/_data/rules` and `bot/_data/migrations` (see pyproject.toml). Every
path to shipped data is built here, so the code runs the same from a checkout, a wheel or a container.

A site's own rules directory (config `triage.rules_dir`) lies on top of the shipped rules: a file
present there replaces the shipped file of the same name, an absent one falls back to it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# The repository root when running from a checkout; tests and benchmarks use it for fixtures.
CHECKOUT_ROOT = Path(__file__).resolve().parents[1]


def data_dir(name: str) -> Path:
    """A shipped top-level data folder ("rules" or "migrations"): packaged copy first, else the checkout's."""
    packaged = files("bot").joinpath("_data", name)
    if packaged.is_dir():
        return Path(str(packaged))
    return CHECKOUT_ROOT / name


def package_dir(*parts: str) -> Path:
    """A folder inside the `bot` package, e.g. package_dir("web", "templates")."""
    return Path(str(files("bot").joinpath(*parts)))


def rules_dir() -> Path:
    """The shipped default rules."""
    return data_dir("rules")


def migrations_dir() -> Path:
    return data_dir("migrations")


def rule_file(site_dir: Path | None, name: str) -> Path:
    """The rule file `name` in force: the site's own if it has one, else the shipped default.

    A site directory that does not exist is a mistake (a typo in the config), not "use the
    defaults": its path is returned so the loader reports the file as missing.
    """
    if site_dir is None:
        return rules_dir() / name
    own = Path(site_dir) / name
    if own.exists() or not Path(site_dir).is_dir():
        return own
    return rules_dir() / name
