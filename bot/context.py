"""The running application's shared pieces: config, database engine, rules, calendar.

One Context per process, built at start (never at import time) and passed to the web app, the
scheduler and the CLI commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot import db, logs
from bot.config import Config

if TYPE_CHECKING:
    from bot.tickets.calendar import WorkCalendar
    from bot.tickets.policy import PolicyTable
    from bot.triage.rules import RuleStore


@dataclass
class Context:
    config: Config
    engine: Engine
    worker_id: str = field(default_factory=db.worker_id)

    @classmethod
    def open(cls, config: Config, *, check_schema: bool = True) -> Context:
        logs.register_config_secrets(config)
        engine = db.make_engine(config.database_url)
        if check_schema:
            db.ensure_schema(engine, config.database_url, auto_migrate=config.database.auto_migrate)
        return cls(config=config, engine=engine)

    def session(self):
        """`with ctx.session() as s:` commits on success, rolls back on error."""
        return db.session_scope(self.engine)

    @property
    def tz(self) -> str:
        return self.config.timezone

    @cached_property
    def rules(self) -> RuleStore:
        from bot.triage.jieba_cache import use_cache_dir
        from bot.triage.rules import RuleStore

        use_cache_dir(self.config.path(self.config.data_dir))
        return RuleStore(self.config.rules_dir)

    @cached_property
    def calendar(self) -> WorkCalendar:
        from bot.tickets.calendar import WorkCalendar

        return WorkCalendar(self.config.holidays_path)

    @cached_property
    def policy(self) -> PolicyTable:
        from bot.tickets.policy import PolicyTable

        return PolicyTable.from_mapping({"tickets": self.config.tickets.model_dump(mode="json")}, file=self.config.source)

    def close(self) -> None:
        self.engine.dispose()
