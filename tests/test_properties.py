"""Property-based tests (hypothesis) of the three parsers of outside input.

1. Host-call argument decoding: arbitrary i32 arguments reach every ``env``
   function through a real guest (``tests/modules/hostcall-args.wat``); only the
   documented outcomes happen, and a claimed length never makes the host allocate
   what guest memory does not hold.
2. ``CoordinatedRequest.from_payload`` and its field accessors on arbitrary bytes
   and JSON: a request or None, then values or ``FieldError``.
3. ``load_config`` on TOML documents built from the known sections and keys with
   arbitrary values: a Config, or a ConfigError whose every line names a key.

Bounded example counts, no deadline (a job's timing is noisy on a shared machine).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import math
import re
import struct
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactr_wasm import ExecutionError, RunErr, WasmEngine
from reactr_wasm.capabilities.cache import MemoryCache
from reactr_wasm.capabilities.db import QueryDef, QueryType
from reactr_wasm.capabilities.db_sqlite import SQLiteDatabase
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.capabilities.static import StaticFiles
from reactr_wasm.config import (
    CALLBACKS,
    LIMITS,
    RUNNABLE,
    SERVER,
    Config,
    ConfigError,
    dump_toml,
    load_config,
    parse_size,
)
from reactr_wasm.config.capabilities import CACHE, DB, HTTP, STATIC
from reactr_wasm.wasm.module import HOST_FUNCTIONS
from reactr_wasm.wasm.request import FIELD_META, CoordinatedRequest, FieldError
from reactr_wasm.wasm.runnable import CoordinatedResponse, WasmRunnable
from tests.conftest import wat_module

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- 1. host-call argument decoding ---------------------------------------------------------

# The order of hostcall-args.wat's function selector.
FORWARDED = [
    "return_result", "return_error", "return_abort", "get_ffi_result", "add_ffi_var", "log_msg",
    "request_get_field", "request_set_field", "resp_set_header", "cache_set", "cache_get", "fetch_url",
    "graphql_query", "get_static_file", "db_exec", "run_job",
]  # fmt: skip
PAGE = 65536
CLAIM = 16 * 1024 * 1024  # a length at least this large is far beyond the guest's memory
# What a host function may answer, besides a size >= 0 or a pending error (< -1).
FIXED_CODES = {"get_ffi_result": {0, -1}, "add_ffi_var": {0, -1}, "cache_set": {0, -1, -2}}
FAULT = re.compile(
    r"wasm execution error: failed to wasmFunc: (?P<function>\w+): "
    r"(pointer \d+ \+ length \d+ is outside guest memory \(\d+ bytes\)|result of \d+ bytes exceeds the limit of \d+)"
)

# i32 values: small (field types, methods, codes), around zero, the end of the guest's
# memory, the sign bit, and anything.
i32s = st.one_of(
    st.integers(0, 6),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-64, 64),
    st.integers(PAGE - 64, PAGE + 64),
    st.sampled_from([2**31 - 1, -(2**31), -1, 2**31 - 16, CLAIM, 2**30]),
)
texts = st.text(max_size=40)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def forwarding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmRunnable]:
    """hostcall-args.wat with cache, static files and SQLite granted (HTTP is refused: no network here)."""
    root = tmp_path_factory.mktemp("hostcalls")
    (root / "static").mkdir()
    (root / "static" / "file.txt").write_text("static")
    query = QueryDef(name="q", type=QueryType.SELECT, var_count=0, query="SELECT 1 AS one")
    database = SQLiteDatabase(root / "db.sqlite", [query])
    grants = Capabilities(cache=MemoryCache(), static=StaticFiles(root / "static"), db=database)
    with WasmEngine() as engine:
        runnable = engine.load("forward", wat_module("hostcall-args"), capabilities=grants)
        yield runnable
        runnable.close()
    database.close()


INPUT_AT = 1024  # hostcall-args.wat's allocator hands the job input the first block, at 1024
HEADER = 32  # the selector block; argument bytes follow it in the input


def payload_of(request: CoordinatedRequest) -> bytes:
    """The job payload that carries ``request``: Reactr's CoordinatedRequest JSON, ``body`` and ``state`` in base64."""
    return json.dumps(
        {
            "method": request.method,
            "url": request.url,
            "request_id": request.request_id,
            "body": base64.b64encode(request.body).decode(),
            "headers": request.headers,
            "resp_headers": request.resp_headers,
            "params": request.params,
            "state": {key: base64.b64encode(value).decode() for key, value in request.state.items()},
        },
        separators=(",", ":"),
    ).encode()


def forward(function: str, args: list[int], *, real_ident: bool = True, pending: bool = False) -> bytes:
    """The hostcall-args.wat input that calls ``function`` with ``args`` (padded to 7)."""
    args = [*args, *[0] * (7 - len(args))]
    return struct.pack("<BBxx7i", FORWARDED.index(function), real_ident | pending << 1, *args)


urls = st.one_of(
    texts.filter(bool), st.sampled_from(["http://[::1", "http://x/?a=1&a=2", "/p?q=%zz", "http://[v1.x]/"])
)
# Request bodies that exercise the body field: JSON objects, other JSON, deep nesting, not JSON.
BODIES = (b'{"a":"b","n":1}', b'{"a":"\\ud800"}', b"[1]", b"\xff{", b"[" * 5000, b'{"a":' * 3000 + b"0" + b"}" * 3000)
bodies = st.one_of(st.binary(max_size=40), st.sampled_from(BODIES))


text_tables = st.dictionaries(texts, texts, max_size=3)
requests = st.builds(
    CoordinatedRequest,
    method=texts.filter(bool),
    url=urls,
    request_id=st.just("req"),
    body=bodies,
    headers=text_tables,
    params=text_tables,
    state=st.dictionaries(texts, st.binary(max_size=20), max_size=3),
)  # a CoordinatedRequest with arbitrary method, URL, headers, params, state and body


@given(
    function=st.sampled_from(FORWARDED),
    real_ident=st.booleans(),
    pending=st.booleans(),
    args=st.lists(i32s, min_size=7, max_size=7),
    as_request=st.booleans(),
    data=st.data(),
)
@PROPERTY
def test_host_calls_answer_arbitrary_arguments_only_as_documented(
    forwarding: WasmRunnable,
    function: str,
    real_ident: bool,
    pending: bool,
    args: list[int],
    as_request: bool,
    data: st.DataObject,
) -> None:
    body = forward(function, args, real_ident=real_ident, pending=pending)
    if as_request:
        request = data.draw(requests)
        request.body = body
    payload = payload_of(request) if as_request else body
    arity = HOST_FUNCTIONS[function][0]
    claimed = max((value & 0xFFFFFFFF for value in args[:arity]), default=0)
    records = _Records()
    logging.getLogger("reactr_wasm").addHandler(records)
    tracemalloc.start()
    try:
        outcome = _run(forwarding, payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        logging.getLogger("reactr_wasm").removeHandler(records)
    host_errors = [f"{r.getMessage()}: {r.exc_info[1]!r}" for r in records.records if r.exc_info]
    assert not host_errors, "a host function raised instead of answering"
    if claimed >= CLAIM:
        assert peak < CLAIM // 4, f"{function} claimed {claimed} bytes: the host allocated {peak}"
    if isinstance(outcome, ExecutionError):
        fault = FAULT.fullmatch(str(outcome).strip())
        assert fault is not None and fault["function"] == function, str(outcome)
    elif isinstance(outcome, bytes) and function in FIXED_CODES and re.fullmatch(rb"-?\d+", outcome):
        assert int(outcome) in FIXED_CODES[function], outcome
    # RunErr: return_error and return_abort record the guest's own error, which is documented too.


def _run(runnable: WasmRunnable, payload: bytes) -> bytes | RunErr | ExecutionError:
    try:
        output = runnable.run(payload)
    except (RunErr, ExecutionError) as error:
        return error
    return output.output if isinstance(output, CoordinatedResponse) else output


@given(
    request=requests,
    function=st.sampled_from(["request_get_field", "request_set_field", "resp_set_header"]),
    field_type=st.one_of(st.sampled_from(range(-1, 7)), i32s),
    key=texts,
    value=texts,
)
@PROPERTY
def test_request_host_calls_answer_arbitrary_requests_and_fields_with_abi_codes(
    forwarding: WasmRunnable, request: CoordinatedRequest, function: str, field_type: int, key: str, value: str
) -> None:
    """Readable keys and values: no trap; a size, -1, or a pending error (request_set_field)."""
    key_bytes, value_bytes = key.encode(), value.encode()
    key_at, value_at = INPUT_AT + HEADER, INPUT_AT + HEADER + len(key_bytes)
    args = {
        "request_get_field": [field_type, key_at, len(key_bytes)],
        "request_set_field": [field_type, key_at, len(key_bytes), value_at, len(value_bytes)],
        "resp_set_header": [key_at, len(key_bytes), value_at, len(value_bytes)],
    }[function]
    payload = request.body = forward(function, args) + key_bytes + value_bytes
    output = forwarding.run(payload_of(request))
    assert isinstance(output, CoordinatedResponse), f"{payload!r} is not answered as a request"
    code = int(output.output)
    if function == "request_get_field":
        assert code >= -1
    elif function == "request_set_field":
        assert code in (0, -1) or code < -1
    else:
        assert code == 0 and output.resp_headers.get(key) == value


# --- 2. the CoordinatedRequest parser and its field accessors -------------------------------

QUICK = settings(PROPERTY, max_examples=150)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
# Raw JSON text a generic encoder would not write: lone surrogate escapes, nesting deeper
# than the parser's recursion, integers longer than Python converts, NaN.
json_fragments = st.one_of(
    json_values.map(json.dumps),
    st.sampled_from(['"\\ud800"', "NaN", "-Infinity", "1" * 5000]),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 3000).map(lambda depth: '{"a":' * depth + "0" + "}" * depth),
)
# JSON strings, sometimes with lone or paired surrogate escapes, sometimes empty.
string_fragments = st.one_of(
    st.text(min_size=1, max_size=40).map(json.dumps),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\ud83d\\ude00"', '""']),
)
base64_fragments = bodies.map(lambda raw: json.dumps(base64.b64encode(raw).decode()))


def _object(pairs: dict[str, str]) -> str:
    """A JSON object from already-encoded values."""
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in pairs.items()) + "}"


string_tables = st.dictionaries(texts, string_fragments, max_size=3).map(_object)
# What each request key usually holds; now and then (1 in 8) it holds any JSON instead.
REQUEST_FIELDS = {
    "method": string_fragments,
    "url": st.sampled_from(['"/p?q=1"', '"http://[::1"', '"http://x/?a=1&a=%zz"']) | string_fragments,
    "request_id": string_fragments,
    "body": base64_fragments,
    "headers": string_tables,
    "resp_headers": string_tables,
    "params": string_tables,
    "state": st.dictionaries(texts, base64_fragments, max_size=3).map(_object),
}


@st.composite
def request_objects(draw: st.DrawFn) -> bytes:
    """JSON objects shaped like a request (keys in any case), each value usually well-typed, or anything."""
    keys = ["method", "url", "request_id", *draw(st.lists(st.sampled_from(list(REQUEST_FIELDS)[3:]), unique=True))]
    fields = {}
    for key in keys:
        typed = draw(st.integers(0, 7)) != 3
        fields[key.upper() if draw(st.booleans()) else key] = draw(REQUEST_FIELDS[key] if typed else json_fragments)
    return _object(fields).encode()


field_types = st.one_of(st.sampled_from(range(-1, 7)), st.integers())


@given(
    payload=st.one_of(st.binary(max_size=200), request_objects()),
    reads=st.lists(st.tuples(field_types, texts), max_size=4),
)
@QUICK
def test_the_request_parser_returns_a_request_or_none_and_fields_read_as_bytes_or_field_error(
    payload: bytes, reads: list[tuple[int, str]]
) -> None:
    request = CoordinatedRequest.from_payload(payload)
    if request is None:
        return
    assert request.method and request.url and request.request_id
    assert CoordinatedRequest.from_payload(payload_of(request)) == request
    keys = ["", "method", "url", "id", "body", *request.headers, *request.params, *request.state]
    for field_type, key in [*reads, *((kind, key) for kind in range(6) for key in keys)]:
        try:
            value = request.get_field(field_type, key)
        except FieldError:
            continue
        assert isinstance(value, bytes)


@given(
    payload=request_objects(),
    writes=st.lists(
        st.tuples(field_types, st.sampled_from(["method", "url", "body", "id", "a"]) | texts, texts), max_size=4
    ),
)
@QUICK
def test_request_fields_are_written_or_refused_with_field_error(
    payload: bytes, writes: list[tuple[int, str, str]]
) -> None:
    """A field written reads back as written (meta ``id`` is read-only); anything else is a FieldError."""
    request = CoordinatedRequest.from_payload(payload)
    if request is None:
        return
    for field_type, key, value in writes:
        try:
            request.set_field(field_type, key, value)
        except FieldError:
            continue
        if (field_type, key) != (FIELD_META, "id"):
            assert request.get_field(field_type, key) == value.encode()


# --- 3. the config loader -------------------------------------------------------------------


class Raw(str):
    """TOML text written as is (values a TOML writer would refuse to produce)."""


def toml(value: object) -> str:
    """``value`` as a TOML value (inline tables for tables)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")  # JSON escapes are TOML's
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(key)} = {toml(item)}" for key, item in value.items()) + "}"


ENV = {"TOKEN": "secret", "PORT": "8080", "EMPTY": ""}
config_scalars = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 65535, 65536, 2**63 - 1, -(2**63), 10**30]),
    st.integers(300, 400).map(lambda digits: Raw("9" * digits)),  # beyond a float
    st.sampled_from([Raw("1" * 5000), Raw("[" * 3000 + "]" * 3000)]),  # beyond Python's int and stack limits
    st.floats(),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["10MB", "1.5GiB", "256 KiB", "0b", "9" * 400 + "GiB", "1e3MB", "reuse", "fresh", "redis"]),
    st.sampled_from(["env(TOKEN)", "Bearer env(TOKEN)", "env(UNSET)", " env(PORT) ", "env(EMPTY)", "x.example.com"]),
    st.sampled_from(["~", "~/runnables", "~nobody-here/x", "~a\0b", "a\0b", "../up", "/"]),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    st.sampled_from(["http", "cache", "static", "db", "graphql", "nope"]).map(lambda name: [name]),
)
config_values = st.one_of(config_scalars, st.lists(config_scalars, max_size=3))


def table_of(rules: Iterable[str]) -> st.SearchStrategy[dict[str, object]]:
    """Tables with some of the known keys (and now and then an unknown one), each with any value."""
    return st.dictionaries(st.sampled_from([*rules, "unknown_key"]), config_values, max_size=4)


queries = st.fixed_dictionaries(
    {},
    optional={
        "name": config_scalars,
        "type": st.sampled_from(["select", "insert", "bogus", 1, 7]) | config_scalars,
        "varCount": config_scalars,
        "query": config_scalars,
    },
)
capabilities_tables = st.fixed_dictionaries(
    {},
    optional={
        "grant": config_values,
        "http": table_of(HTTP),
        "cache": table_of(CACHE),
        "static": table_of(STATIC),
        "db": st.one_of(table_of(DB), st.builds(lambda t, q: {**t, "queries": q}, table_of(DB), st.lists(queries))),
        "bogus": table_of(["x"]),
    },
)
runnable_tables = st.one_of(
    table_of(RUNNABLE),
    st.builds(lambda t, http: {**t, "http": http}, table_of(RUNNABLE), table_of(HTTP) | config_scalars),
)
config_documents = st.fixed_dictionaries(
    {},
    optional={
        "runnables_dir": config_values,
        "cache_dir": config_values,
        "server": table_of(SERVER) | config_scalars,
        "limits": table_of(LIMITS),
        "callbacks": table_of(CALLBACKS),
        "capabilities": capabilities_tables | config_scalars,
        "runnables": st.dictionaries(st.text(max_size=8), runnable_tables | config_scalars, max_size=3),
        "unknown": config_values,
    },
)


@given(document=config_documents)
@PROPERTY
def test_the_config_loader_gives_a_config_or_a_config_error_naming_the_key(
    config_file: Path, document: dict[str, object]
) -> None:
    config_file.write_text("\n".join(f"{json.dumps(key)} = {toml(value)}" for key, value in document.items()))
    try:
        config = load_config(config_file, env=ENV)
    except ConfigError as error:
        for line in str(error).splitlines():
            named = any(line.startswith(f"{config_file}: {key}") for key in document)
            assert named or line.startswith(f"{config_file}: invalid TOML: "), line
        return
    assert isinstance(config, Config)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config") / "reactr.toml"


# --- plain regressions for what the properties found ------------------------------------------


def test_a_request_with_an_unparseable_url_reads_its_query_as_minus_one(forwarding: WasmRunnable) -> None:
    """Was an "internal host error" trap: urlsplit's ValueError escaped request_get_field."""
    request = CoordinatedRequest(method="GET", url="http://[::1", request_id="r")
    request.body = forward("request_get_field", [5, INPUT_AT + HEADER, 1]) + b"q"
    output = forwarding.run(payload_of(request))
    assert isinstance(output, CoordinatedResponse) and output.output == b"-1"
    with pytest.raises(FieldError, match=r"url 'http://\[::1' cannot be parsed"):
        request.get_field(5, "q")


def test_json_nested_deeper_than_the_parser_goes_is_not_a_request_and_not_a_json_body() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert CoordinatedRequest.from_payload(b'{"request_id":"r","method":"GET","url":"/","x":' + deep + b"}") is None
    request = CoordinatedRequest(method="GET", url="/", request_id="r", body=deep)
    with pytest.raises(FieldError, match="nested too deeply"):
        request.get_field(1, "a")
    with pytest.raises(FieldError, match="nested too deeply"):
        request.set_field(1, "a", "b")


def test_lone_surrogate_escapes_read_as_replacement_characters() -> None:
    """Go's decoder reads them as U+FFFD; they used to raise UnicodeEncodeError when a guest read them."""
    payload = rb'{"request_id":"r","method":"G\ud800","url":"/","headers":{"X-A\udfff":"v\ud83d\ude00\udc00"}}'
    request = CoordinatedRequest.from_payload(payload)
    assert request is not None
    assert request.get_field(0, "method") == "G\ufffd".encode()
    assert request.get_field(2, "x-a\ufffd") == "v\U0001f600\ufffd".encode()
    body = CoordinatedRequest(method="GET", url="/", request_id="r", body=rb'{"a":"\udfff"}')
    assert body.get_field(1, "a") == "\ufffd".encode()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"[limits]\ntimeout = {'9' * 400}", "limits.timeout: must be a number of seconds above 0, got 999"),
        (f"[callbacks]\nbackoff = {'9' * 400}", "callbacks.backoff: must be a number of seconds, 0 or more, got 999"),
        (f'[limits]\nmemory = "{"9" * 400}GiB"', 'limits.memory: must be at most 8 EiB (2^63-1 bytes), got "999'),
        ("[limits]\nmemory = 9223372036854775808", "limits.memory: must be at most 8 EiB (2^63-1 bytes), got 92"),
        ('[limits]\nresult_size = "16777216 TiB"', "limits.result_size: must be at most 8 EiB (2^63-1 bytes)"),
        ('runnables_dir = "~a\\u0000b"', 'runnables_dir: must not contain a NUL character, got "~a\\u0000b"'),
        ('[capabilities.static]\ndir = "a\\u0000"', "capabilities.static.dir: must not contain a NUL character"),
        ('[callbacks]\nca_file = "~\\u0000"', "callbacks.ca_file: must not contain a NUL character"),
        ('[callbacks]\nca_file = "\\r"', "callbacks.ca_file: cannot read "),
        ('[capabilities.http]\nca_file = "a\\u0000"', "capabilities.http.ca_file: must not contain a NUL character"),
        ('[runnables."a\\nb"]\npool_size = 0', 'runnables."a\\nb".pool_size: must be an integer between 1 and 1024'),
        ('[runnables]\n"x\\u2028y" = 1', 'runnables."x\\u2028y": must be a table ([runnables."x\\u2028y"]), got 1'),
        ('"odd\\u0085key" = 1', '"odd\\u0085key": unknown key; known keys: runnables_dir'),
        (f"x = {'1' * 5000}", "invalid TOML: Exceeds the limit (4300 digits) for integer string conversion"),
        (f"x = {'[' * 5000}{']' * 5000}", "invalid TOML: arrays or tables nested too deeply"),
    ],
)
def test_config_values_beyond_every_limit_are_refused_naming_the_key(config_file: Path, text: str, line: str) -> None:
    """Each was an OverflowError, ValueError or RecursionError, or a message split over lines."""
    config_file.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(config_file, env={})
    assert str(error.value).startswith(f"{config_file}: {line}")
    assert len(str(error.value).splitlines()) == 1


def test_fractional_sizes_are_exact() -> None:
    """A float made "1.001MB" 1000999 bytes."""
    assert parse_size("1.001MB") == 1_001_000 and parse_size("1.5GiB") == 1_610_612_736


def test_printed_configs_escape_control_characters_and_load_back(config_file: Path) -> None:
    """dump_toml wrote DEL and U+2028 raw: DEL is invalid TOML."""
    config_file.write_text('[server]\nhost = "a\\u007fb\\u2028c"\n[runnables."x\\ty"]\npool_size = 2\n')
    config = load_config(config_file, env={})
    config_file.write_text(dump_toml(config.redacted()))
    again = load_config(config_file, env={})
    assert again.server.host == "a\x7fb\u2028c" and again.runnables["x\ty"].pool_size == 2
