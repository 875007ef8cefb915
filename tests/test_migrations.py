"""The migrations build exactly the tables bot/models.py declares: one head, nothing missing, nothing extra."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers every table)
from bot.db import alembic_config, upgrade
from bot.search import include_object


def test_one_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert len(ScriptDirectory.from_config(alembic_config(url)).get_heads()) == 1


def test_migrated_schema_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False, "include_object": include_object})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []
