"""The ``[cluster]`` config section: Redis mode settings, env() secrets, and the visibility timeout rule."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from reactr_wasm.config import ClusterConfig, Config, dump_toml, load_config
from reactr_wasm.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reactr.toml"
    path.write_text(text)
    return path


def refusal(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=env or {})
    return str(caught.value)


def test_without_the_section_there_is_no_redis() -> None:
    assert Config().cluster == ClusterConfig() and not Config().cluster.enabled


def test_every_setting_is_read(tmp_path: Path) -> None:
    text = """
[cluster]
redis = "env(REDIS_URL)"
namespace = "prod.eu-1"
visibility_timeout = 45
max_deliveries = 3
heartbeat = 0.5
prefetch = 16
"""
    config = load_config(write(tmp_path, text), env={"REDIS_URL": "redis://:pw@10.0.0.5:6379/2"})
    assert config.cluster == ClusterConfig("redis://:pw@10.0.0.5:6379/2", "prod.eu-1", 45.0, 3, 0.5, 16)
    assert config.cluster.enabled


def test_the_url_is_a_secret_masked_when_printed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[cluster]\nredis = "redis://:hunter2@db:6379/0"'), env={})
    data = config.redacted()
    assert data["cluster"]["redis"] == "***"
    assert "hunter2" not in dump_toml(data)
    assert tomllib.loads(dump_toml(data))["cluster"]["namespace"] == "reactr"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('redis = "http://db:6379"', "cluster.redis: must be a Redis URL starting with redis://, rediss://, unix://"),
        ("redis = 6379", "cluster.redis: must be a Redis URL starting with redis://, rediss://, unix://"),
        ('namespace = "has space"', "cluster.namespace: must be 1 to 64 letters, digits"),
        ('namespace = ""', "cluster.namespace: must be 1 to 64 letters, digits"),
        ("visibility_timeout = 0", "cluster.visibility_timeout: must be a number of seconds above 0"),
        ("max_deliveries = 0", "cluster.max_deliveries: must be an integer between 1 and 1000"),
        ("heartbeat = -1", "cluster.heartbeat: must be a number of seconds above 0"),
        ("prefetch = 0", "cluster.prefetch: must be an integer between 1 and 100000"),
        ("workers = 2", "cluster.workers: unknown key; known keys: redis, namespace"),
    ],
)
def test_bad_values_are_refused_by_key(tmp_path: Path, text: str, line: str) -> None:
    message = refusal(tmp_path, f"[cluster]\n{text}")
    assert message.startswith(f"{tmp_path / 'reactr.toml'}: {line}"), message


def test_a_bad_url_is_not_echoed(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[cluster]\nredis = "http://user:hunter2@db"')
    assert "hunter2" not in message


def test_an_unset_env_variable_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, '[cluster]\nredis = "env(REDIS_URL)"')
    assert message.endswith("cluster.redis: environment variable REDIS_URL is not set")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[limits]\ntimeout = 30\n[cluster]\nredis = 'redis://db'", "the longest job timeout (limits.timeout = 30 s)"),
        (
            "[cluster]\nredis = 'redis://db'\nvisibility_timeout = 20\n[runnables.slow]\ntimeout = 25",
            "the longest job timeout (runnables.slow.timeout = 25 s)",
        ),
    ],
)
def test_the_visibility_timeout_must_outlast_every_job_timeout(tmp_path: Path, text: str, reason: str) -> None:
    message = refusal(tmp_path, text)
    assert f"cluster.visibility_timeout: must be longer than {reason}" in message


def test_the_visibility_rule_applies_only_in_redis_mode(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[limits]\ntimeout = 60\n[cluster]\nvisibility_timeout = 30"), env={})
    assert config.limits.timeout == 60 and not config.cluster.enabled
