"""CLI conventions through the real entry point (`govbot` in a subprocess): every failure ends in one
`error:` line and a non-zero exit, no traceback, no secret; input CSV in UTF-8, UTF-8 with BOM or GBK;
check-config lists every problem; --version; help for every command and option; --json; aligned tables."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import tomli_w

from bot.cli import LAZY_GROUPS, main
from bot.cli_io import table, width
from bot.config import REPO_ROOT
from tests.conftest import EXAMPLE, deep_merge

GOVBOT = Path(sys.executable).with_name("govbot")
CSV = "key,text\n1,路灯坏了好几天了没人管\n2,请问社保卡怎么办理\n"


def write_config(tmp_path: Path, overrides: dict | None = None, name: str = "config.toml") -> Path:
    data = deep_merge(EXAMPLE, {"data_dir": str(tmp_path / "data"),
                                "database": {"url": f"sqlite:///{tmp_path / 'govbot.db'}"},
                                "emulator": {"demo": False, "state_file": str(tmp_path / "emulator.json")},
                                "triage": {"rules_dir": str(REPO_ROOT / "rules")},
                                "tickets": {"holidays_file": str(REPO_ROOT / "rules" / "holidays.toml")}})
    path = tmp_path / name
    path.write_bytes(tomli_w.dumps(deep_merge(data, overrides or {})).encode())
    return path


def govbot(*args: str, config: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [str(GOVBOT), *(["--config", str(config)] if config else []), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)


def failed(result: subprocess.CompletedProcess, code: int = 1) -> str:
    """The one `error:` line of a failed command (and nothing like a traceback)."""
    err = result.stderr.decode("utf-8")
    assert result.returncode == code, (result.returncode, err)
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error:") for line in lines) == 1, err
    return lines[-1]


@pytest.fixture
def config(tmp_path: Path, migrated_db: Path) -> Path:
    shutil.copy(migrated_db, tmp_path / "govbot.db")
    return write_config(tmp_path)


def test_csv_in_utf8_bom_and_gbk_gives_the_same_result(tmp_path: Path, config: Path):
    outputs = set()
    for name, data in (("utf8", CSV.encode()), ("bom", b"\xef\xbb\xbf" + CSV.encode()), ("gbk", CSV.encode("gbk"))):
        src = tmp_path / f"{name}.csv"
        src.write_bytes(data)
        result = govbot("rules", "classify", str(src), config=config)
        assert result.returncode == 0, result.stderr.decode()
        outputs.add(result.stdout)
    [out] = outputs
    assert "城乡建设" in out.decode() and "劳动和社会保障" in out.decode()
    assert "rules" not in failed(govbot("rules", "classify", "-", config=config, stdin=b"key,text\n1,\xff\xfe\x81\n"))
    assert "UTF-8" in failed(govbot("rules", "classify", "-", config=config, stdin=b"key,text\n1,\xff\xfe\x81\n"))


def test_file_errors_are_one_line(tmp_path: Path, config: Path):
    src = tmp_path / "in.csv"
    src.write_text(CSV, encoding="utf-8")
    assert failed(govbot("rules", "classify", str(tmp_path / "nosuch.csv"), config=config)) \
        == f"error: 文件不存在：{tmp_path / 'nosuch.csv'}"
    line = failed(govbot("rules", "classify", str(src), "-o", str(tmp_path / "no" / "dir" / "out.csv"), config=config))
    assert line.startswith("error: 无法写入") and "文件或目录不存在" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = failed(govbot("report", "--month", "2026-11", "--out", str(blocker / "reports"), config=config))
    assert line.startswith("error: 无法写入")
    assert "配置文件" in failed(govbot("tickets", "list", config=tmp_path / "missing.toml"))


def test_unreachable_postgresql_is_one_line_without_the_password(tmp_path: Path):
    config = write_config(tmp_path, {"database": {"url": "postgresql+psycopg://govbot:s3cret-pw@127.0.0.1:1/govbot"}})
    line = failed(govbot("tickets", "list", config=config))
    assert line.startswith("error: 无法连接数据库 postgresql+psycopg://govbot:***@127.0.0.1:1/govbot")
    assert "s3cret-pw" not in line


def test_check_config_lists_every_problem(tmp_path: Path):
    config = write_config(tmp_path, {"triage": {"rules_dir": str(tmp_path / "no-rules")},
                                     "tickets": {"holidays_file": str(tmp_path / "no-holidays.toml")},
                                     "database": {"url": "postgresql+psycopg://u:pw@127.0.0.1:1/x"}})
    result = govbot("check-config", config=config)
    line = failed(result)
    err = result.stderr.decode()
    assert "no-rules" in err and "no-holidays.toml" in err and "无法连接数据库" in err
    assert line == "error: 发现 3 个问题、0 个提醒（见上）"
    bad = write_config(tmp_path, {"scheduler": {"max_attempts": "many"}, "web": {"port": "x"}}, name="bad.toml")
    err = govbot("check-config", config=bad).stderr.decode()
    assert "scheduler.max_attempts" in err and "web.port" in err and "发现 2 个问题" in err


def test_check_config_ok_names_the_config_and_database(config: Path):
    result = govbot("check-config", config=config)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith(f"配置正确：{config}")


def test_version_and_unknown_command():
    result = govbot("--version")
    assert result.returncode == 0 and result.stdout.decode().startswith("govbot ")
    assert "No such command" in failed(govbot("nosuch"), code=2)


def test_listing_commands_take_json(config: Path):
    assert govbot("init", config=config).returncode == 0
    for args in (("user", "list"), ("accounts", "list"), ("tickets", "list"), ("post", "list"),
                 ("publication", "list"), ("tickets", "notifications"), ("templates", "list", "--department", "住建局")):
        result = govbot(*args, "--json", config=config)
        assert result.returncode == 0, (args, result.stderr.decode())
        assert isinstance(json.loads(result.stdout), list), args
    users = json.loads(govbot("user", "list", "--json", config=config).stdout)
    assert {"username": "gongkai", "department": "政务公开办"}.items() <= next(
        u for u in users if u["username"] == "gongkai").items()


def test_light_commands_do_not_load_heavy_libraries(config: Path):
    """Start-up stays fast: help and listing never import jieba, wechatpy, matplotlib or the web stack."""
    probe = ("import sys, runpy; sys.argv = ['govbot', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('bot', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('jieba', 'wechatpy', 'matplotlib', 'fastapi') if m in sys.modules), file=sys.stderr)")
    for args in (["--help"], ["--config", str(config), "tickets", "list"]):
        result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60)
        assert result.stderr.strip().splitlines()[-1] == "[]", (args, result.stderr)


def test_every_command_and_option_has_help():
    missing = []

    def walk(cmd: click.Command, path: str) -> None:
        if not (cmd.help or cmd.short_help):
            missing.append(path)
        missing.extend(f"{path} {p.opts[0]}" for p in cmd.params
                       if isinstance(p, click.Option) and not p.hidden and not p.help)
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{path} {name}")

    walk(main, "govbot")
    assert not missing


def test_the_lazy_groups_help_is_the_groups_own():
    ctx = click.Context(main)
    for name, (_, short_help) in LAZY_GROUPS.items():
        assert main.get_command(ctx, name).get_short_help_str(limit=300) == short_help, name


def test_tables_align_by_display_width():
    lines = table([("政务公开办", 1), ("ab", 12)], ("department", "n"), align="<>")
    assert len({width(line) for line in lines}) == 1
    assert lines[1].startswith("政务公开办  ") and lines[2].startswith("ab          ")
