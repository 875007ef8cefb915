"""Config: the example is complete and valid; mistakes name the file, key and reason."""

import tomllib

import pytest

from bot.config import REPO_ROOT, Config, load_config, parse_config
from bot.errors import ConfigError
from tests.conftest import EXAMPLE, deep_merge


def _keys(model_cls, prefix=""):
    for name, field in model_cls.model_fields.items():
        if name == "source":
            continue
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            yield from _keys(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _example_keys(data, prefix=""):
    for k, v in data.items():
        # Mappings whose keys are data (topics, intents, API names), not settings.
        if isinstance(v, dict) and k not in ("topic_departments", "policy", "priority") \
                and f"{prefix}{k}" not in ("quotas.wechat", "quotas.weibo"):
            yield from _example_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_example_documents_every_key():
    documented = set(_example_keys(EXAMPLE))
    missing = [k for k in _keys(Config) if k not in documented]
    assert missing == []


def test_example_is_valid():
    cfg = load_config(REPO_ROOT / "config.example.toml")
    assert cfg.emulator.enabled
    assert [s.name for s in cfg.signoff.stages] == ["初审", "复审", "终审"]
    assert cfg.wechat_api_base == "http://127.0.0.1:8601/wechat/cgi-bin/"


def test_no_file_gives_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOVBOT_CONFIG", raising=False)
    cfg = load_config()
    assert cfg.source == "<defaults>" and cfg.emulator.enabled
    assert cfg.database_url.startswith("sqlite:////") and cfg.database_url.endswith("data/govbot.db")


@pytest.mark.parametrize(
    ("over", "key", "reason"),
    [
        ({"web": {"port": 0}}, "web.port", "greater than or equal to 1"),
        ({"web": {"prot": 1}}, "web.prot", "Extra inputs"),
        ({"gap": {"warn_days": 20}}, "gap", "warn_days must be smaller"),
        ({"timezone": "Mars/Base"}, "timezone", "unknown time zone"),
        ({"tickets": {"policy": {"rant": {"first_response_days": 1, "resolution_days": 2}}}}, "tickets.policy", "unknown intent"),
        ({"accounts": [{"name": "a", "platform": "wechat"}]}, "accounts[0]", "needs appid"),
        ({"accounts": [{"name": "a", "platform": "weibo", "uid": "1", "department": "nope"}]}, "accounts[0].department", "no department"),
        ({"signoff": {"stages": [{"name": "x", "role": "boss"}]}}, "signoff.stages[0].role", "Input should be"),
    ],
)
def test_wrong_values_name_key_and_reason(tmp_path, over, key, reason):
    with pytest.raises(ConfigError) as e:
        parse_config(deep_merge(EXAMPLE, over), file=str(tmp_path / "c.toml"))
    assert e.value.key == key
    assert reason in e.value.reason
    assert str(tmp_path / "c.toml") in str(e.value)


def test_real_platform_refuses_placeholder_secrets(tmp_path):
    data = deep_merge(EXAMPLE, {"emulator": {"enabled": False}})
    data["accounts"][0]["secret"] = "changeme"
    with pytest.raises(ConfigError) as e:
        parse_config(data, file="c.toml")
    assert e.value.key == "accounts[0].secret" and "placeholder" in e.value.reason

@pytest.mark.parametrize("emulator", [True, False])
@pytest.mark.parametrize("key", ["dev", "change-me", "a", "short-but-not-32-characters"])
def test_known_or_short_secret_key_refused_in_every_mode(key, emulator):
    data = deep_merge(EXAMPLE, {"emulator": {"enabled": emulator}, "web": {"secret_key": key}})
    with pytest.raises(ConfigError) as e:
        parse_config(data, file="c.toml")
    assert e.value.key == "web.secret_key"
    assert parse_config(deep_merge(data, {"web": {"secret_key": "k" * 16 + "0123456789abcdef"}}), file="c.toml")


def test_env_secrets(monkeypatch, tmp_path):
    data = deep_merge(EXAMPLE, {})
    data["accounts"][0]["secret"] = "env:GOVBOT_TEST_SECRET"
    with pytest.raises(ConfigError) as e:
        parse_config(data, file="c.toml")
    assert e.value.key == "accounts[0].secret" and "GOVBOT_TEST_SECRET" in e.value.reason
    monkeypatch.setenv("GOVBOT_TEST_SECRET", "from-env")
    assert parse_config(data, file="c.toml").accounts[0].secret == "from-env"


def test_syntax_error_names_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[web\nport = 1", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.file == str(p) and e.value.key == "(syntax)"
    assert tomllib  # the stdlib parser is what reads the file


def test_ticket_priority_is_validated(tmp_path):
    with pytest.raises(ConfigError) as e:
        parse_config(deep_merge(EXAMPLE, {"tickets": {"priority": {"complaint": 0}}}), file="c.toml")
    assert e.value.key == "tickets.priority" and "1 (high)" in e.value.reason
