"""The config file: typed values, every refusal naming file + key + reason, env() secrets, masking."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from reactr_wasm.compose import cache_dir_for, limits_for
from reactr_wasm.config import (
    MIB,
    RUNNABLE,
    SECTIONS,
    CallbackConfig,
    Config,
    LimitsConfig,
    RunnableConfig,
    ServerConfig,
    dump_toml,
    load_config,
    parse_size,
)
from reactr_wasm.config import capabilities as capconf
from reactr_wasm.errors import ConfigError
from reactr_wasm.limits import Limits

FULL = """
runnables_dir = "runnables"
cache_dir = "/var/cache/reactr"

[server]
host = "0.0.0.0"
port = 9000
body_limit = "1MiB"
result_ttl = 60
max_results = 500
max_wait = 30.5
auth_tokens = ["env(REACTR_TOKEN)", "second-token"]
drain_timeout = 0

[limits]
timeout = 2.5
memory = "64MiB"
result_size = 4096
queue_size = 100

[callbacks]
allow_private = true
allow_http = false
secret = "env(CALLBACK_SECRET)"
attempts = 3
timeout = 1
backoff = 0.1
backoff_max = 2

[runnables.hello-echo]
pool_size = 4
isolation = "fresh"
timeout = 0.5
memory = "10MB"
prewarm = true

[runnables.resize]
result_size = "32 MiB"
queue_size = 5
"""
ENV = {"REACTR_TOKEN": "token-from-env", "CALLBACK_SECRET": "s3cret-from-env"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reactr.toml"
    path.write_text(text)
    return path


def refusal(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), env=env or {})
    return str(error.value)


def test_a_full_file_gives_typed_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), env=ENV)
    assert config.source == str(tmp_path / "reactr.toml")
    assert config.runnables_dir == tmp_path / "runnables"  # relative to the file's folder
    assert config.cache_dir == Path("/var/cache/reactr")
    assert config.server == ServerConfig(
        host="0.0.0.0",
        port=9000,
        body_limit=MIB,
        result_ttl=60.0,
        max_results=500,
        max_wait=30.5,
        auth_tokens=["token-from-env", "second-token"],
        drain_timeout=0.0,
    )
    assert config.limits == LimitsConfig(timeout=2.5, memory=64 * MIB, result_size=4096, queue_size=100)
    assert config.callbacks == CallbackConfig(
        allow_private=True,
        allow_http=False,
        secret="s3cret-from-env",
        attempts=3,
        timeout=1.0,
        backoff=0.1,
        backoff_max=2.0,
    )
    assert config.runnable("hello-echo") == RunnableConfig(
        pool_size=4, isolation="fresh", timeout=0.5, memory=10_000_000, prewarm=True
    )
    assert config.runnable("resize") == RunnableConfig(result_size=32 * MIB, queue_size=5)
    assert config.runnable("absent") == RunnableConfig()
    assert isinstance(config.server.result_ttl, float)


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={})
    assert dataclasses.replace(config, source="<defaults>") == Config()


def test_per_runnable_overrides_fall_back_to_global_limits(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), env=ENV)
    assert limits_for(config, "hello-echo") == Limits(timeout=0.5, memory=10_000_000, result_size=4096)
    assert limits_for(config, "resize") == Limits(timeout=2.5, memory=64 * MIB, result_size=32 * MIB)
    assert cache_dir_for(config) == Path("/var/cache/reactr")
    assert cache_dir_for(Config(runnables_dir=Path("/srv/r"))) == Path("/srv/r/.reactr-cache")
    assert cache_dir_for(Config()) is None


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[server]\nport = "x"', 'server.port: must be an integer between 1 and 65535, got "x"'),
        ("[server]\nport = 70000", "server.port: must be an integer between 1 and 65535, got 70000"),
        ("[server]\nport = true", "server.port: must be an integer between 1 and 65535, got true"),
        ("[server]\nport = 80.0", "server.port: must be an integer between 1 and 65535, got 80.0"),
        ("[server]\nprot = 80", "server.prot: unknown key; known keys: host, port, body_limit"),
        ('[server]\nhost = ""', 'server.host: must be a non-empty string, got ""'),
        ('[server]\nauth_tokens = "abc"', "server.auth_tokens: must be a list of non-empty strings"),
        ("[limits]\ntimeout = 0", "limits.timeout: must be a number of seconds above 0, got 0"),
        ("[limits]\ntimeout = -1.5", "limits.timeout: must be a number of seconds above 0, got -1.5"),
        ("[limits]\ntimeout = inf", "limits.timeout: must be a number of seconds above 0"),
        ('[limits]\ntimeout = "10s"', 'limits.timeout: must be a number of seconds above 0, got "10s"'),
        ('[limits]\nmemory = "lots"', "limits.memory: must be a size above 0: bytes as an integer or a string like"),
        ("[limits]\nmemory = 0", "limits.memory: must be a size above 0"),
        ("[limits]\nqueue_size = 0", "limits.queue_size: must be an integer of at least 1, got 0"),
        ('[callbacks]\nallow_http = "yes"', 'callbacks.allow_http: must be true or false, got "yes"'),
        ("[callbacks]\nbackoff = 5\nbackoff_max = 1", "callbacks.backoff_max: must be at least callbacks.backoff"),
        ('[runnables.x]\nisolation = "shared"', 'runnables.x.isolation: must be one of "reuse", "fresh", got "shared"'),
        ("[runnables.x]\npool_size = 0", "runnables.x.pool_size: must be an integer between 1 and 1024, got 0"),
        ("[runnables.x]\ncolour = 1", "runnables.x.colour: unknown key; known keys: pool_size, isolation"),
        ("runnables = 3", "runnables: must be a table of [runnables.NAME] tables, got 3"),
        ("[runnables]\nx = 3", "runnables.x: must be a table ([runnables.x]), got 3"),
        ("server = 1", "server: must be a table ([server]), got 1"),
        ('[redis]\nurl = "redis://x"', "redis: unknown key; known keys: runnables_dir, cache_dir, server"),
        ("runnables_dir = 5", "runnables_dir: must be a non-empty string, got 5"),
        ('[callbacks]\nsecret = "env(UNSET_VAR)"', "callbacks.secret: environment variable UNSET_VAR is not set"),
    ],
)
def test_every_refusal_names_file_key_and_reason(tmp_path: Path, text: str, line: str) -> None:
    message = refusal(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'reactr.toml'}: {line}"), message


def test_all_problems_are_reported_at_once_one_per_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[server]\nport = "x"\n[limits]\ntimeout = 0\n[runnables.a]\nprewarm = 1')
    lines = message.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["server.port", "limits.timeout", "runnables.a.prewarm"]
    assert all(line.startswith(str(tmp_path / "reactr.toml")) for line in lines)


def test_a_bad_secret_is_not_echoed_in_the_message(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[server]\nauth_tokens = ["ok", 12345678]')
    assert message.endswith("server.auth_tokens: must be a list of non-empty strings")
    assert "12345678" not in message


def test_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    message = refusal(tmp_path, "[server\nport = 1")
    assert message.startswith(f"{tmp_path / 'reactr.toml'}: invalid TOML: ")
    assert "line 1" in message
    with pytest.raises(ConfigError, match=r"nowhere\.toml: cannot read: No such file"):
        load_config(tmp_path / "nowhere.toml")


def test_env_values_work_in_any_string_field(tmp_path: Path) -> None:
    text = '[server]\nhost = "env(BIND)"\n[limits]\nmemory = "env(MEM)"'
    config = load_config(write(tmp_path, text), env={"BIND": "0.0.0.0", "MEM": "1MiB"})
    assert (config.server.host, config.limits.memory) == ("0.0.0.0", MIB)


def test_redacted_masks_secrets_and_dumps_back_to_a_loadable_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), env=ENV)
    data = config.redacted()
    assert data["callbacks"]["secret"] == "***"
    assert data["server"]["auth_tokens"] == ["***", "***"]
    text = dump_toml(data)
    assert "s3cret" not in text and "token-from-env" not in text and "second-token" not in text
    assert tomllib.loads(text)["runnables"]["hello-echo"]["isolation"] == "fresh"
    again = load_config(write(tmp_path, text), env={})
    assert again.callbacks.secret == "***"
    assert dataclasses.replace(again, callbacks=config.callbacks, server=config.server) == config
    assert dataclasses.replace(again.server, auth_tokens=config.server.auth_tokens) == config.server


def test_defaults_have_no_secrets_to_mask() -> None:
    data = Config().redacted()
    assert data["callbacks"]["secret"] is None and data["server"]["auth_tokens"] == []
    assert "secret" not in dump_toml(data)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1, 1),
        (4096, 4096),
        ("512", 512),
        ("10MB", 10_000_000),
        ("10mb", 10_000_000),
        ("256MiB", 256 * MIB),
        ("512 KiB", 512 * 1024),
        ("1.5GiB", 3 * 512 * MIB),
        ("2kb", 2000),
        ("1TiB", 1024**4),
        (" 7 B ", 7),
    ],
)
def test_sizes(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [0, -1, "0MiB", "MiB", "10 XB", "ten", 1.5, True, "-1MB", [1]])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError, match="must be a size above 0"):
        parse_size(value)


def test_the_rule_table_covers_every_dataclass_field() -> None:
    for name, (cls, rules) in SECTIONS.items():
        assert list(rules) == [f.name for f in dataclasses.fields(cls) if f.name != "proxy_environment"], name
        assert name in {f.name for f in dataclasses.fields(Config)}
    assert [*RUNNABLE, "http"] == [f.name for f in dataclasses.fields(RunnableConfig)]
    for rules, cls, special in [
        (capconf.HTTP, capconf.HttpSettings, []),
        (capconf.CACHE, capconf.CacheSettings, []),
        (capconf.STATIC, capconf.StaticSettings, []),
        (capconf.DB, capconf.DbSettings, ["queries"]),
    ]:
        assert [*rules, *special] == [f.name for f in dataclasses.fields(cls) if f.name != "proxy_environment"], cls
