"""``proxy``, ``proxy_from_env``, ``ca_file`` and ``resolve``: what they mean, and how bad values are refused.

The behaviour on the wire (a real proxy, a real CA) is in ``test_http_egress.py``
and ``test_server_callbacks.py``; this module covers the rules themselves
(NO_PROXY matching, the proxy variables, pins) and the config file's checks,
each bad value with its ``file: key: reason`` error.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from reactr_wasm.capabilities.egress import Egress, bypasses_proxy, read_proxy_environment, resolve_pins
from reactr_wasm.compose import build_backends, capabilities_for
from reactr_wasm.config import Config, ConfigError, dump_toml, load_config
from reactr_wasm.config.capabilities import HttpSettings, runnable_settings
from tests.egress_parts import make_ca

# --- NO_PROXY ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "host", "port", "direct"),
    [
        ("*", "anything.example", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),  # subdomains too
        ("example.com", "badexample.com", 443, False),  # label boundary
        (".example.com", "example.com", 443, True),  # a leading dot changes nothing
        ("*.example.com", "example.com", 443, True),  # nor does a leading "*."
        ("*.example.com", "api.example.com", 443, True),
        ("EXAMPLE.com.", "Api.Example.COM", 80, True),  # case and a trailing dot ignored
        ("example.com:8443", "example.com", 8443, True),  # for that port only
        ("example.com:8443", "example.com", 443, False),
        ("other.org, example.com", "example.com", 443, True),
        ("10.0.0.0/8", "10.1.2.3", 443, True),  # CIDR: hosts that are addresses in it
        ("10.0.0.0/8", "11.0.0.1", 443, False),
        ("10.0.0.0/8", "ten.example", 443, False),  # no lookup: a name is not an address
        ("127.0.0.1", "127.1", 80, True),  # a legacy IPv4 host is read as its address
        ("::1", "::1", 443, True),
        ("fd00::/8", "fd00::5", 443, True),
        ("localhost", "localhost", 80, True),
        ("", "example.com", 443, False),
        ("example.*", "example.com", 443, False),  # no other wildcards
    ],
)
def test_no_proxy_matching(entries: str, host: str, port: int, direct: bool) -> None:
    assert bypasses_proxy([entry.strip() for entry in entries.split(",")], host, port) is direct


# --- the proxy variables -------------------------------------------------------------------------


def test_the_lower_case_variable_wins_and_an_empty_one_counts_as_unset() -> None:
    read = read_proxy_environment(
        {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1", "http_proxy": "", "HTTP_PROXY": "up:3128"}
    )
    assert (read.https, read.http) == ("http://lower:1", "http://up:3128")  # no scheme: http://


def test_no_proxy_entries_and_all_proxy_is_not_read() -> None:
    read = read_proxy_environment({"NO_PROXY": " a.example , ,10.0.0.0/8,", "ALL_PROXY": "http://all:1"})
    assert read.no_proxy == ("a.example", "10.0.0.0/8")
    assert (read.https, read.http) == (None, None)


def test_a_bad_proxy_variable_is_named_without_its_value() -> None:
    with pytest.raises(ValueError, match=r"^https_proxy: must be an http:// proxy URL; socks5:// proxies") as raised:
        read_proxy_environment({"https_proxy": "socks5://user:pw@proxy:1080"})
    assert "pw" not in str(raised.value)


def test_the_route_a_request_takes() -> None:
    egress = Egress(
        https_proxy="http://p:1",
        http_proxy="http://q:2",
        no_proxy=("internal.example",),
        pins=resolve_pins({"api.test:443": "10.0.0.5"}),
    )
    assert egress.proxy_for("https", "example.com", 443) == "http://p:1"
    assert egress.proxy_for("http", "example.com", 80) == "http://q:2"
    assert egress.proxy_for("https", "db.internal.example", 443) is None  # NO_PROXY
    assert egress.proxy_for("https", "API.test.", 443) is None  # pinned: a direct route
    assert egress.proxy_for("https", "api.test", 8443) == "http://p:1"  # the pin is for port 443 only
    assert egress.pinned("api.test", 443) == ("10.0.0.5",) and egress.pinned("api.test", 8443) is None


# --- the config file -----------------------------------------------------------------------------


def load(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "reactr.toml"
    path.write_text(toml)
    return load_config(path, env=env or {})


def refusal(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, toml, env)
    return str(raised.value)


HOST_PORT = 'the key must be "host:port" with a port 1-65535, like "api.internal:443"'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'proxy = "socks5://proxy:1080"',
            "capabilities.http.proxy: must be an http:// proxy URL; socks5:// proxies are not supported",
        ),
        (
            'proxy = "https://proxy:443"',
            "capabilities.http.proxy: must be an http:// proxy URL; https:// proxies are not supported",
        ),
        (
            'proxy = "http://user:pw@proxy:99999"',
            "capabilities.http.proxy: must be a URL like http://proxy.example:3128 (the port is not a number 0-65535)",
        ),
        (
            'proxy = "http://:3128"',
            "capabilities.http.proxy: must name the proxy's host, like http://proxy.example:3128",
        ),
        (
            'proxy = "http://proxy:3128/path"',
            "capabilities.http.proxy: must be http://[user:password@]host[:port], with no path or query",
        ),
        ("proxy = 3128", "capabilities.http.proxy: must be a non-empty string"),  # a secret: the value is not shown
        ('proxy_from_env = "yes"', 'capabilities.http.proxy_from_env: must be true or false, got "yes"'),
        (
            'proxy = "http://proxy:3128"\nproxy_from_env = true',
            "capabilities.http.proxy_from_env: set either proxy or proxy_from_env, not both",
        ),
        ("ca_file = 1", "capabilities.http.ca_file: must be a non-empty string, got 1"),
        ('resolve = "api.test:443=1.2.3.4"', 'capabilities.http.resolve: must be a table of "host:port" = "address"'),
        ('[capabilities.http.resolve]\n"api.test" = "10.0.0.5"', f"capabilities.http.resolve: 'api.test': {HOST_PORT}"),
        (
            '[capabilities.http.resolve]\n"api.test:0" = "10.0.0.5"',
            f"capabilities.http.resolve: 'api.test:0': {HOST_PORT}",
        ),
        ('[capabilities.http.resolve]\n":443" = "10.0.0.5"', f"capabilities.http.resolve: ':443': {HOST_PORT}"),
        (
            '[capabilities.http.resolve]\n"10.0.0.1:443" = "10.0.0.5"',
            "capabilities.http.resolve: '10.0.0.1:443': the host must be a name; an IP address needs no resolve entry",
        ),
        (
            '[capabilities.http.resolve]\n"api.test:443" = "127.1"',
            "capabilities.http.resolve: 'api.test:443': '127.1' is not an IP address (write it as 10.0.0.5 or fd00::5)",
        ),
        (
            '[capabilities.http.resolve]\n"api.test:443" = []',
            "capabilities.http.resolve: 'api.test:443': the value must be an IP address or a list of them",
        ),
        (
            '[capabilities.http.resolve]\n"api.test:443" = 5',
            "capabilities.http.resolve: 'api.test:443': the value must be an IP address or a list of them",
        ),
    ],
)
def test_bad_http_egress_values_are_refused_naming_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    text = refusal(tmp_path, f"[capabilities.http]\n{toml}\n")
    assert text.startswith(f"{tmp_path / 'reactr.toml'}: "), text
    assert message in text, text
    assert "pw" not in text


def test_a_ca_file_must_exist_and_hold_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    text = refusal(tmp_path, '[capabilities.http]\nca_file = "missing.pem"\n[callbacks]\nca_file = "junk.pem"\n')
    assert text.splitlines() == [
        f"{tmp_path / 'reactr.toml'}: capabilities.http.ca_file: cannot read {tmp_path / 'missing.pem'}:"
        " No such file or directory",
        f"{tmp_path / 'reactr.toml'}: callbacks.ca_file: {tmp_path / 'junk.pem'} holds no usable PEM certificate"
        " (NO_CERTIFICATE_OR_CRL_FOUND)",
    ]


def test_a_bad_proxy_variable_is_refused_only_when_proxy_from_env_is_set(tmp_path: Path) -> None:
    env = {"HTTPS_PROXY": "ftp://user:pw@proxy:21"}
    load(tmp_path, "[capabilities.http]\n", env)  # not asked for: not read
    text = refusal(tmp_path, "[capabilities.http]\nproxy_from_env = true\n[callbacks]\nproxy_from_env = true\n", env)
    reason = "HTTPS_PROXY: must be an http:// proxy URL; ftp:// proxies are not supported"
    assert f"capabilities.http.proxy_from_env: {reason}" in text and f"callbacks.proxy_from_env: {reason}" in text
    assert "pw" not in text


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[callbacks]\nproxy = "ftp://proxy:21"', "callbacks.proxy: must be an http:// proxy URL"),
        ('[callbacks.resolve]\n"hook.test" = "10.0.0.5"', f"callbacks.resolve: 'hook.test': {HOST_PORT}"),
        ('[runnables.a.http]\nproxy = "ftp://proxy:21"', "runnables.a.http.proxy: must be an http:// proxy URL"),
        ('[runnables.a.http]\nca_file = "missing.pem"', "runnables.a.http.ca_file: cannot read "),
        ('[runnables.a.http.resolve]\n"x:1" = "nope"', "runnables.a.http.resolve: 'x:1': 'nope' is not an IP address"),
    ],
)
def test_callbacks_and_runnables_check_the_same_keys(tmp_path: Path, toml: str, message: str) -> None:
    text = refusal(tmp_path, toml + "\n")
    assert f"{tmp_path / 'reactr.toml'}: {message}" in text, text


def test_good_values_are_read_normalised_and_relative_to_the_config_file(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(ca.ca_cert.read_bytes())
    toml = """
[capabilities.http]
proxy = "http://reactr:env(PROXY_PASSWORD)@proxy.internal:3128"
ca_file = "certs/ca.pem"
[capabilities.http.resolve]
"API.Test.:443" = "[fd00::5]"
"db.test:5432" = ["10.0.0.5", "10.0.0.6", "10.0.0.5"]
[callbacks]
proxy_from_env = true
ca_file = "certs/ca.pem"
"""
    config = load(tmp_path, toml, {"PROXY_PASSWORD": "s3cret", "https_proxy": "proxy:3128", "no_proxy": "hooks.test"})
    http = config.capabilities.http
    assert http.proxy == "http://reactr:s3cret@proxy.internal:3128"
    assert http.ca_file == tmp_path / "certs" / "ca.pem"
    assert http.resolve == {"api.test:443": ["fd00::5"], "db.test:5432": ["10.0.0.5", "10.0.0.6"]}
    egress = http.egress()
    assert egress.pinned("api.test", 443) == ("fd00::5",) and egress.https_proxy == http.proxy
    callbacks = config.callbacks.egress()
    assert (callbacks.https_proxy, callbacks.http_proxy, callbacks.no_proxy) == (
        "http://proxy:3128",
        None,
        ("hooks.test",),
    )


def test_print_config_masks_the_proxy_and_reads_back(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    toml = f"""
[capabilities.http]
proxy = "http://reactr:env(PROXY_PASSWORD)@proxy.internal:3128"
ca_file = "{ca.ca_cert.name}"
[capabilities.http.resolve]
"api.test:443" = "10.0.0.5"
[callbacks]
proxy_from_env = true
[runnables.a.http]
proxy = "http://other:env(PROXY_PASSWORD)@proxy2:3128"
"""
    config = load(tmp_path, toml, {"PROXY_PASSWORD": "s3cret", "HTTPS_PROXY": "http://u:envpw@p:1"})
    text = dump_toml(config.redacted())
    assert "s3cret" not in text and "envpw" not in text and "proxy_environment" not in text
    data = tomllib.loads(text)
    assert data["capabilities"]["http"]["proxy"] == "***" and data["runnables"]["a"]["http"]["proxy"] == "***"
    assert data["capabilities"]["http"]["resolve"] == {"api.test:443": ["10.0.0.5"]}
    assert data["capabilities"]["http"]["ca_file"] == str(ca.ca_cert)
    assert data["callbacks"]["proxy_from_env"] is True
    (tmp_path / "again.toml").write_text(text)
    again = load_config(tmp_path / "again.toml", env={})
    assert again.capabilities.http.resolve == config.capabilities.http.resolve


def test_a_runnable_choosing_a_proxy_key_clears_the_other(tmp_path: Path) -> None:
    toml = """
[capabilities.http]
proxy_from_env = true
[runnables.own.http]
proxy = "http://own:3128"
[runnables.env.http]
proxy_from_env = true
[runnables.pinned.http.resolve]
"api.test:443" = "10.0.0.9"
"""
    config = load(tmp_path, toml, {"HTTPS_PROXY": "http://envproxy:1"})

    def egress(name: str) -> Egress:
        settings = runnable_settings(config.capabilities, "http", config.runnable(name))
        assert isinstance(settings, HttpSettings)
        return settings.egress()

    own = egress("own")
    assert (own.https_proxy, own.http_proxy) == ("http://own:3128", "http://own:3128")
    assert egress("env").https_proxy == "http://envproxy:1"
    pinned = egress("pinned")
    assert pinned.pinned("api.test", 443) == ("10.0.0.9",) and pinned.https_proxy == "http://envproxy:1"


def test_runnables_with_different_egress_get_their_own_clients(tmp_path: Path) -> None:
    toml = """
[capabilities]
grant = ["http"]
[runnables.a.http.resolve]
"api.test:443" = "10.0.0.9"
[runnables.b.http.resolve]
"api.test:443" = "10.0.0.9"
[runnables.c.http]
proxy = "http://proxy:3128"
"""
    config = load(tmp_path, toml)
    with build_backends(config) as backends:
        a, b, c, d = (capabilities_for(config, backends, name).http for name in "abcd")
        shared = backends.get("http").client(config.capabilities.http)  # [capabilities.http]'s own client
        assert a is b and a is not c and a is not d and c is not d and d is shared
