"""`govbot db copy --to URL`: SQLite -> real PostgreSQL through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import func
from sqlmodel import Session, select

from bot import db
from bot.audit import record
from bot.dbcopy import tables
from bot.models import AuditEvent, User
from bot.publishing.service import create_post

pytestmark = pytest.mark.slow


def govbot(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def populated(ctx, tmp_path: Path) -> Path:
    """The example's organisation, departments, accounts and users, a post, and 2,500 audit events."""
    with ctx.session() as s:
        author = s.exec(select(User).where(User.username == "xuanchuan")).one()
        create_post(session=s, author=author, title="关于开展冬季供暖检查的通知", body="<p>正文</p>")
        for i in range(2500):
            record(session=s, actor="system", action="bulk", subject_type="test", subject_id=i)
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps({"database": {"url": ctx.config.database_url}}), encoding="utf-8")
    return config


def counts(url: str) -> dict[str, int]:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        out = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables()}
    engine.dispose()
    return out


def test_copy_sqlite_to_postgresql(populated: Path, ctx, pg_server: str):
    import uuid

    from sqlalchemy import create_engine, text

    name = f"govbot_copy_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    target = pg_server.rsplit("/", 1)[0] + "/" + name
    try:
        result = govbot(populated, "db", "copy", "--to", target, "--batch-size", "500")
        assert result.returncode == 0, result.stderr
        expected = counts(ctx.config.database_url)
        assert expected["auditevent"] >= 2500 and expected["post"] == 1 and expected["user"] > 1
        assert counts(target) == expected
        assert f"copied {sum(expected.values())} rows" in result.stdout and "copying rows" in result.stderr

        # The sequences moved past the copied ids: new rows get fresh ids instead of colliding.
        engine = db.make_engine(target)
        with Session(engine) as s:
            event = AuditEvent(actor="system", action="after-copy", subject_type="test")
            s.add(event)
            s.commit()
            assert event.id > s.exec(select(func.max(AuditEvent.id)).where(AuditEvent.action == "bulk")).one()
            assert s.exec(select(User).where(User.username == "xuanchuan")).one().department_id is not None
        engine.dispose()

        again = govbot(populated, "db", "copy", "--to", target)
        assert again.returncode == 1
        lines = again.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: 目标数据库 postgresql+psycopg://")
        assert "不是空的" in lines[0]
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_unreachable_target_is_one_error_line(populated: Path):
    result = govbot(populated, "db", "copy", "--to", "postgresql+psycopg://govbot:s3cret@127.0.0.1:1/govbot")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 无法连接目标数据库")
    assert "s3cret" not in result.stderr


def test_missing_source_file_is_one_error_line(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///nothing-here.db"\n', encoding="utf-8")
    result = govbot(config, "db", "copy", "--to", f"sqlite:///{tmp_path / 'target.db'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: 当前配置的数据库文件 {tmp_path / 'nothing-here.db'} 不存在"]
    assert not (tmp_path / "nothing-here.db").exists() and not (tmp_path / "target.db").exists()
