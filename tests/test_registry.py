"""The capability registry is the one list: the ABI table, the config, compose and the host calls all follow it.

And what ``import reactr_wasm`` costs: no network client, no server, no optional driver.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from reactr_wasm import RunErr, WasmEngine
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.capabilities.registry import CAPABILITIES, GUARDS, NAMES, CapabilitySpec
from reactr_wasm.compose import build_backends, build_reactr, capabilities_for, register_wasm
from reactr_wasm.config import Config, ConfigError, parse_config
from reactr_wasm.config.capabilities import SECTION_TYPES, CapabilitiesConfig, Section
from reactr_wasm.wasm.hostcalls import NOT_ENABLED
from reactr_wasm.wasm.module import HOST_FUNCTIONS, LABELS
from tests.conftest import ROOT, wat_module
from tests.test_capabilities import call

# What `import reactr_wasm` must not load: network clients, the server, the optional drivers.
HEAVY = ("aiohttp", "yarl", "multidict", "httpx", "psycopg", "psycopg_pool", "redis")


def _modules_after(code: str) -> list[str]:
    """The modules loaded by ``code`` then printed, in a fresh interpreter from the checkout."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    return done.stdout.split()


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY or name.startswith("reactr_wasm.server")]


def test_import_reactr_wasm_loads_no_network_client_server_or_driver() -> None:
    assert _heavy(_modules_after("import reactr_wasm")) == []


def test_running_a_job_loads_no_network_client() -> None:
    code = (
        "from reactr_wasm import Reactr\n"
        "with Reactr() as reactr:\n"
        "    assert reactr.register('echo', 'runnables/hello-echo.wasm')(b'x').then(timeout=10) == b'hello x'"
    )
    assert _heavy(_modules_after(code)) == []


@pytest.mark.parametrize(("grant", "http"), [(["cache", "static"], False), (["graphql"], True), (["http"], True)])
def test_the_http_clients_exist_only_when_http_or_graphql_is_granted(grant: list[str], http: bool) -> None:
    code = (
        "from pathlib import Path\n"
        "from reactr_wasm.compose import build_backends\n"
        "from reactr_wasm.config import parse_config\n"
        f"raw = {{'capabilities': {{'grant': {grant!r}, 'static': {{'dir': '.'}}}}}}\n"
        "config = parse_config(raw, source='x.toml', base=Path('.'), env={})\n"
        "with build_backends(config) as backends:\n"
        "    print('opened:' + ','.join(backends.sections))"
    )
    modules = _modules_after(code)
    opened = next(line for line in modules if line.startswith("opened:")).removeprefix("opened:").split(",")
    assert ("http" in opened) is http
    assert ("aiohttp" in modules) is http


# --- every list of capabilities follows the registry ---------------------------------------------


def test_capabilities_fields_are_the_registry_names_in_order() -> None:
    assert tuple(field.name for field in dataclasses.fields(Capabilities)) == NAMES
    assert len(set(NAMES)) == len(NAMES)


def test_every_guarded_host_function_is_in_the_abi_and_guarded_once() -> None:
    guarded = [function for spec in CAPABILITIES for function in spec.host_functions]
    assert len(guarded) == len(set(guarded)) == len(GUARDS)
    for spec in CAPABILITIES:
        for function in spec.host_functions:
            assert function in HOST_FUNCTIONS, function
            assert LABELS[function] == spec.name
    assert not set(LABELS.values()) - set(NAMES) - {"log", "request"}, "a label that is no capability and no group"


def test_every_section_belongs_to_a_capability_and_answers_read_and_open() -> None:
    sections = CapabilitiesConfig().sections()
    assert {spec.section for spec in CAPABILITIES} == set(sections) == set(SECTION_TYPES)
    for name, kind in SECTION_TYPES.items():
        assert issubclass(kind, Section)
        assert kind.read is not Section.read and kind.open is not Section.open, name


def test_the_config_knows_exactly_the_registry_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"capabilities": {"grant": ["nope"]}}, source="x.toml", base=Path("."), env={})
    assert f"unknown capability 'nope'; known: {', '.join(NAMES)}" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config({"capabilities": {"nope": {}}}, source="x.toml", base=Path("."), env={})
    assert f"capabilities.nope: unknown table; known: {', '.join(SECTION_TYPES)}" in str(caught.value)
    assert list(Config().redacted()["capabilities"]) == ["grant", *SECTION_TYPES]


def test_grants_of_unconfigured_sections_are_refused_as_the_registry_says() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"capabilities": {"grant": list(NAMES)}}, source="x.toml", base=Path("."), env={})
    problems = str(caught.value).splitlines()
    unready = [spec for spec in CAPABILITIES if not CapabilitiesConfig().sections()[spec.section].ready()]
    assert [spec.name for spec in unready] == ["static", "db"]
    assert problems == [
        f"x.toml: capabilities.grant: grants {spec.name!r} but [capabilities.{spec.section}] is not configured"
        for spec in unready
    ]


# The capability-call guest's operation for each guarded host function it can call.
OPS = {"fetch_url": "f", "graphql_query": "g", "get_static_file": "s", "db_exec": "d", "cache_get": "c"}


def _config(tmp_path: Path, spec: CapabilitySpec) -> Config:
    """``with``: granted only ``spec``; ``without``: granted everything else; every section ready."""
    (tmp_path / "static").mkdir(exist_ok=True)
    raw = {
        "capabilities": {"grant": [], "static": {"dir": "static"}, "db": {"path": "app.db"}},
        "runnables": {
            "with": {"capabilities": [spec.name]},
            "without": {"capabilities": [name for name in NAMES if name != spec.name]},
        },
    }
    return parse_config(raw, source="x.toml", base=tmp_path, env={})


@pytest.mark.parametrize("spec", CAPABILITIES, ids=NAMES)
def test_each_capability_is_given_and_refused_as_its_entry_says(
    spec: CapabilitySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, spec)
    with build_backends(config) as backends, build_reactr(config, backends) as reactr:
        granted = capabilities_for(config, backends, "with")
        assert granted.granted() == [spec.name]
        refused = capabilities_for(config, backends, "without")
        assert refused.granted() == [name for name in NAMES if name != spec.name]
        caplog.set_level(logging.WARNING)
        register_wasm(reactr, config, "without", wat_module("capability-call"), Path("without.wasm"), backends)
        assert f"uses {spec.name} but is not granted it" in caplog.text
        for function in spec.host_functions:
            if function not in OPS:
                continue  # cache_set and add_ffi_var: refused without a pending text (their tests elsewhere)
            with WasmEngine() as engine:
                guest = engine.load("without", wat_module("capability-call"), capabilities=refused)
                with pytest.raises(RunErr) as caught:
                    guest.run(call(OPS[function], "x"))
            hint = f"grant it with [runnables.without] capabilities = [{', '.join(map(repr, NAMES))}]".replace("'", '"')
            assert caught.value.message == f"{NOT_ENABLED}; {hint}"
            assert f"{function} by without refused: capability {spec.name!r} is not granted; {hint}" in caplog.text
