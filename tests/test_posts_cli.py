"""`govbot post ...` / `govbot publication ...` against a real config file and SQLite database."""

import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from bot.cli import main
from bot.clock import to_local, utcnow
from bot.config import REPO_ROOT, load_config
from bot.context import Context
from bot.models import Publication

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@pytest.fixture
def config_file(tmp_path: Path, migrated_db: Path) -> Path:
    """config.example.toml with the database and emulator state in places a test may use."""
    text = (REPO_ROOT / "config.example.toml").read_text(encoding="utf-8")
    replacements = {
        'url = "sqlite:///data/govbot.db"': f'url = "sqlite:///{tmp_path / "govbot.db"}"',
        'state_file = "data/emulator.json"': f'state_file = "{tmp_path / "emulator.json"}"',
        "demo = true": "demo = false",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    shutil.copy(migrated_db, tmp_path / "govbot.db")
    (tmp_path / "cover.png").write_bytes(PNG)
    (tmp_path / "body.html").write_text("<p>经县政府研究，决定公开招聘工作人员。</p>\n<p>报名时间：11月25日至12月5日。</p>",
                                        encoding="utf-8")
    return path


@pytest.fixture
def govbot(config_file: Path):
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, ["--config", str(config_file), *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        else:
            assert result.exit_code == 1, result.output
        return result

    run("init")
    return run


def create(govbot, tmp: Path, *extra: str) -> int:
    out = govbot("post", "create", "--as", "xuanchuan", "--title", "示例县2026年秋季公开招聘公告",
                 "--body-file", str(tmp / "body.html"), "--digest", "秋季公开招聘",
                 "--weibo-text", "示例县秋季招聘公告 https://www.gov.example.cn/zp/2026", "--cover", str(tmp / "cover.png"),
                 *extra).output
    return int(re.search(r"created post (\d+)", out).group(1))


def test_story_through_the_cli(govbot, config_file: Path):
    tmp = config_file.parent
    post_id = create(govbot, tmp)
    assert "submitted for 示例县发布, 示例县发布微博; checks passed" in govbot("post", "submit", str(post_id), "--as", "xuanchuan").output

    refused = govbot("post", "sign", str(post_id), "--as", "xuanchuan", ok=False)
    assert refused.stderr.startswith("error: ") and "不能审核自己的稿件" in refused.stderr

    assert "初审 signed by bianji" in govbot("post", "sign", str(post_id), "--as", "bianji", "--version", "1").output
    # An edit after a sign-off restarts the chain.
    edited = govbot("post", "edit", str(post_id), "--as", "xuanchuan", "--digest", "秋季公开招聘20名").output
    assert "now version 2" in edited and "1 sign-off(s) voided" in edited
    stale = govbot("post", "sign", str(post_id), "--as", "bianji", "--version", "1", ok=False)
    assert "只有送审中的稿件可以签署" in stale.stderr
    govbot("post", "submit", str(post_id), "--as", "xuanchuan")
    assert "请重新阅读并签署当前版本" in govbot("post", "sign", str(post_id), "--as", "bianji", "--version", "1", ok=False).stderr
    for name in ("bianji", "fenguan", "zhuyao"):
        govbot("post", "sign", str(post_id), "--as", name, "--version", "2")

    at = to_local(utcnow() + timedelta(days=2), "Asia/Shanghai").strftime("%Y-%m-%d 18:00")
    out = govbot("post", "schedule", str(post_id), "--as", "xuanchuan", "--account", "示例县发布",
                 "--account", "示例县发布微博", "--at", at).output
    assert out.count(f"at {at}") == 2

    shown = govbot("post", "show", str(post_id)).output
    assert "sign-off chain for version 2 (complete)" in shown
    assert re.search(r"1\. 初审 editor\s+bianji", shown) and re.search(r"3\. 终审 approver\s+zhuyao", shown)
    assert "[voided" in shown and "post.chain_restarted" in shown
    assert shown.count("pending  due " + at) == 2

    listed = govbot("publication", "list", "--state", "pending").output
    assert len(listed.strip().splitlines()) == 3 and "示例县发布微博 (weibo)" in listed

    ctx = Context.open(load_config(config_file))
    with ctx.session() as s:
        pub = s.exec(select(Publication).where(Publication.post_id == post_id)).first()
        pub.state, pub.attempts = "failed", 3
        pub.last_error = "wechat error 45009: reach max api daily quota limit"
        s.add(pub)
    ctx.close()
    failed = govbot("publication", "list", "--state", "failed").output
    assert "45009" in failed
    shown = govbot("publication", "show", str(pub.id)).output
    assert "failed" in shown and "last error: wechat error 45009" in shown


def test_failed_checks_are_listed_one_per_line(govbot, config_file: Path):
    govbot("post", "create", "--as", "xuanchuan", "--title", "关于召开坐谈会的通知", "--body", "<p>本通知为内部资料。</p>")
    out = govbot("post", "submit", "1", "--as", "xuanchuan", ok=False).stderr
    lines = out.strip().splitlines()
    assert lines[-1] == "error: 发布前检查未通过（3 个问题）" and len(lines) == 4
    assert any("正文第 1 行第 8 列：敏感词“内部资料”" in x for x in lines)
    assert any("标题第 1 行第 5 列：“坐谈会”应为“座谈会”" in x for x in lines)
    assert any("封面：公众号图文必须有封面图片" in x for x in lines)
    assert "发布前检查未通过（3 个问题）" in govbot("post", "check", "1", ok=False).stderr


def test_reject_and_usage_errors(govbot, config_file: Path):
    post_id = create(govbot, config_file.parent)
    govbot("post", "submit", str(post_id), "--as", "xuanchuan")
    out = govbot("post", "reject", str(post_id), "--as", "fenguan", "--reason", "报名时间有误").output
    assert "rejected at 初审 by fenguan: 报名时间有误" in out
    assert "rejected    报名时间有误" in govbot("post", "show", str(post_id)).output
    assert "只有完成全部审签的稿件可以排期" in govbot("post", "schedule", str(post_id), "--as", "xuanchuan",
                                                "--account", "示例县发布", "--now", ok=False).stderr
    assert "格式不正确" in govbot("post", "schedule", str(post_id), "--as", "xuanchuan",
                                           "--account", "示例县发布", "--at", "明天", ok=False).stderr
    assert "稿件 99 不存在" in govbot("post", "show", "99", ok=False).stderr
    assert "没有用户名为“nobody”的用户" in govbot("post", "sign", str(post_id), "--as", "nobody", ok=False).stderr


@pytest.mark.slow  # several cold starts of the installed script
def test_the_installed_console_script(config_file: Path):
    """The real `govbot` entry point, in a subprocess, against a config file in a temp dir."""
    exe = Path(sys.executable).with_name("govbot")
    assert exe.exists()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), "--config", str(config_file), *args], capture_output=True, text=True,
                              timeout=120, cwd=config_file.parent)

    assert run("init").returncode == 0
    created = run("post", "create", "--as", "xuanchuan", "--title", "示例县供水检修通知",
                  "--body", "<p>11月25日9时至17时停水检修。</p>", "--cover", str(config_file.parent / "cover.png"))
    assert created.returncode == 0, created.stderr
    assert "created post 1" in created.stdout
    refused = run("post", "schedule", "1", "--as", "xuanchuan", "--account", "示例县发布", "--now")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: 稿件 1 当前为“草稿”，只有完成全部审签的稿件可以排期"


def test_byline_and_comment_switch_are_edited_and_signed(govbot, config_file: Path):
    from bot.models import Post

    post_id = create(govbot, config_file.parent)
    ctx = Context.open(load_config(config_file))
    with ctx.session() as s:
        before = s.get(Post, post_id)
        assert before.byline == "" and before.open_comment is True
        hash_before = before.content_hash
    out = govbot("post", "edit", str(post_id), "--as", "xuanchuan", "--byline", "县融媒体中心", "--no-comments").output
    assert "byline" in out and "open_comment" in out and "version 2" in out
    with ctx.session() as s:
        after = s.get(Post, post_id)
        assert (after.byline, after.open_comment, after.version) == ("县融媒体中心", False, 2)
        assert after.content_hash != hash_before  # what signers approve includes them
    assert "nothing changed" in govbot("post", "edit", str(post_id), "--as", "xuanchuan", "--no-comments").output
    govbot("post", "edit", str(post_id), "--as", "xuanchuan", "--byline", "", "--comments")
    with ctx.session() as s:
        back = s.get(Post, post_id)
        # Back to the defaults: the hash a post had before byline and comments were signed, so posts
        # signed before this change keep their sign-offs.
        assert (back.byline, back.open_comment, back.version) == ("", True, 3) and back.content_hash == hash_before
    ctx.close()
