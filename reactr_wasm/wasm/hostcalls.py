"""The ``env`` host functions of Reactr's guest ABI (``reactr-abi.md`` §2).

Each function finds the job it serves through the calling thread: an instance
runs one job at a time on one thread, so ``JobContext`` is set per thread for
the length of a guest call. The ``ident`` argument must match that job, which
closes Reactr's hole where a guest could guess another job's ident.

Errors the guest causes are values (the ABI's codes) or, for pointers outside
its memory, a trap that fails only this job (``GuestFault``).

A job brings what its host calls may reach: its runnable's ``Capabilities``
(a host function guarded by a capability, per ``capabilities/registry.py``,
is refused when that field is None) and the ``job_runner`` of the scheduler
that runs it, for ``run_job``. Nothing here is per engine, so any number of
schedulers can share one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from wasmtime import Linker

from reactr_wasm.capabilities.cache import CacheMiss
from reactr_wasm.capabilities.db import db_exec
from reactr_wasm.capabilities.errors import CapabilityError, RuleDenied
from reactr_wasm.capabilities.hints import grant_hint, rule_hint
from reactr_wasm.capabilities.registry import GUARDS
from reactr_wasm.errors import HostCallError, ReactrError, RunErr
from reactr_wasm.wasm import _raw
from reactr_wasm.wasm.context import JobContext
from reactr_wasm.wasm.driver import HOST_RECORDED, NO_RESULT, RESULT_STATE
from reactr_wasm.wasm.module import HOST_FUNCTIONS
from reactr_wasm.wasm.request import FieldError

log = logging.getLogger("reactr_wasm.guest")

NOT_ENABLED = "capability is not enabled"
MAX_CHAIN_DEPTH = 8  # run_job calls nested deeper than this fail (runaway recursion)

LOG_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}


class _Current(threading.local):
    job: JobContext | None = None


class HostCalls:
    """The ``env`` functions; each job brings the capabilities of its runnable and its job runner."""

    def __init__(self) -> None:
        self.current = _Current()

    # --- plumbing ------------------------------------------------------------

    def link(self, linker: Linker) -> None:
        """Define every function (and its ``_swift`` twin) in ``linker``."""
        for name, (params, results, func) in self._table().items():
            _raw.define_raw_func(linker, "env", name, params, results, func)
            # Swift appends two context registers; they carry nothing for us.
            _raw.define_raw_func(linker, "env", f"{name}_swift", params + 2, results, _drop_two(func))

    def _table(self) -> dict[str, tuple[int, int, Callable[..., int | None]]]:
        """Every host function with its (params, results) from the ABI table in ``module.py``."""
        return {name: (params, results, getattr(self, name)) for name, (params, results) in HOST_FUNCTIONS.items()}

    def _job(self, ident: int, function: str) -> JobContext | None:
        job = self.current.job
        if job is not None and job.ident == ident:
            return job
        if job is not None:
            job.bad_idents += 1
            if job.bad_idents > 1:
                return None  # logged once per job: a guest must not be able to flood the log
        log.error("%s: ident %d does not belong to the calling job", function, ident)
        return None

    def _read(self, ptr: int, length: int) -> bytes:
        job = self.current.job
        memory = job.memory if job is not None else None
        assert memory is not None
        return memory.read(ptr, length)

    def _text(self, ptr: int, length: int) -> str:
        return self._read(ptr, length).decode("utf-8", "replace")

    @staticmethod
    def _pend(job: JobContext, data: bytes, is_error: bool = False) -> int:
        """Store a pending FFI result and return its ABI size."""
        if is_error and len(data) < 2:
            data = data.ljust(2)  # 0 and 1 byte errors would read as success / -1
        job.pending = (data, is_error)
        return -len(data) if is_error else len(data)

    def _pend_error(self, job: JobContext, message: str) -> int:
        return self._pend(job, message.encode(), True)

    def _refuse(self, job: JobContext, function: str) -> int:
        """Log that ``function``'s capability is not granted and leave the ABI's refusal pending, with its fix."""
        hint = self._log_refusal(job, function)
        return self._pend_error(job, f"{NOT_ENABLED}; {hint}")

    @staticmethod
    def _log_refusal(job: JobContext, function: str) -> str:
        """Log the refusal with the grant that would allow it; returns that hint."""
        capability = GUARDS[function]
        hint = grant_hint(job.runnable, job.capabilities.granted(), capability)
        log.warning(
            "%s by %s refused: capability %r is not granted; %s",
            function,
            job.runnable,
            capability,
            hint,
            extra={"runnable": job.runnable, "result_id": job.result_id},
        )
        return hint

    def _failed(self, job: JobContext, function: str, error: ReactrError) -> int:
        """Log a failed capability call and leave its error pending; a rule's refusal names the setting."""
        text = str(error)
        if isinstance(error, RuleDenied):
            text = f"{text}; {rule_hint(job.runnable, error.setting)}"
        log.info("%s by %s failed: %s", function, job.runnable, text, extra={"runnable": job.runnable})
        return self._pend_error(job, text)

    # --- results -------------------------------------------------------------

    def return_result(self, ptr: int, length: int, ident: int) -> None:
        # A job driver's recorder takes the common case without calling here (driver.py).
        job = self.current.job
        if job is None or job.ident != ident:
            self._job(ident, "return_result")  # logs the refusal
            return
        if length & _raw.I32_MASK > job.max_output:
            raise _raw.GuestFault(f"result of {length & _raw.I32_MASK} bytes exceeds the limit of {job.max_output}")
        data = job.memory.read(ptr, length)  # type: ignore[union-attr]
        if job.output is None and job.error is None:  # first record wins; later ones are ignored
            staged = job.staged
            if staged is None:
                job.output = data
            elif staged[RESULT_STATE] == NO_RESULT:  # the driver recorded none: mark this one there
                staged[RESULT_STATE] = HOST_RECORDED
                job.output = data

    def return_error(self, code: int, ptr: int, length: int, ident: int) -> None:
        job = self._job(ident, "return_error")
        if job is None:
            return
        message = self._text(ptr, length)
        if job.error is None:  # an error beats an earlier result; a second error is ignored
            job.error = RunErr(code, message)

    def return_abort(
        self, msg_ptr: int, msg_len: int, file_ptr: int, file_len: int, line: int, col: int, ident: int
    ) -> None:
        job = self._job(ident, "return_abort")
        if job is None:
            return
        text = (
            f"runnable abort: {self._text(msg_ptr, msg_len)}; file: {self._text(file_ptr, file_len)}, "
            f"line: {line}, col: {col}"
        )
        log.error("%s", text, extra={"runnable": job.runnable, "result_id": job.result_id})
        if job.error is None:
            job.error = RunErr(-1, text)

    def get_ffi_result(self, ptr: int, ident: int) -> int:
        job = self._job(ident, "get_ffi_result")
        if job is None or job.pending is None:
            return -1
        data, _ = job.pending
        memory = job.memory
        assert memory is not None
        memory.write(ptr, data)
        job.pending = None
        return 0

    def add_ffi_var(self, name_ptr: int, name_len: int, val_ptr: int, val_len: int, ident: int) -> int:
        job = self._job(ident, "add_ffi_var")
        if job is None:
            return -1
        self._read(name_ptr, name_len)  # names are checked but unused (positional)
        if job.ffi_vars is None:
            job.ffi_vars = []
        job.ffi_vars.append(self._text(val_ptr, val_len))
        return 0

    # --- logging ---------------------------------------------------------------

    def log_msg(self, ptr: int, length: int, level: int, ident: int) -> None:
        job = self._job(ident, "log_msg")
        if job is None:
            return
        message = self._text(ptr, length)
        extra = {"runnable": job.runnable, "result_id": job.result_id}
        if job.request is not None:
            extra["request_id"] = job.request.request_id
        log.log(LOG_LEVELS.get(level, logging.INFO), "[%s] %s", job.runnable, message, extra=extra)

    # --- request mode ------------------------------------------------------------

    def request_get_field(self, field_type: int, key_ptr: int, key_len: int, ident: int) -> int:
        job = self._job(ident, "request_get_field")
        if job is None:
            return -1
        key = self._text(key_ptr, key_len)
        if job.pending is not None or job.request is None:
            return -1
        try:
            return self._pend(job, job.request.get_field(field_type, key))
        except FieldError as error:
            log.info("request_get_field(%d, %r): %s", field_type, key, error)
            return -1

    def request_set_field(
        self, field_type: int, key_ptr: int, key_len: int, val_ptr: int, val_len: int, ident: int
    ) -> int:
        job = self._job(ident, "request_set_field")
        if job is None:
            return -1
        key, value = self._text(key_ptr, key_len), self._text(val_ptr, val_len)
        if job.pending is not None or job.request is None:
            return -1
        try:
            job.request.set_field(field_type, key, value)
        except FieldError as error:
            return self._pend_error(job, str(error))
        return self._pend(job, b"")

    def resp_set_header(self, key_ptr: int, key_len: int, val_ptr: int, val_len: int, ident: int) -> None:
        job = self._job(ident, "resp_set_header")
        if job is None:
            return
        key, value = self._text(key_ptr, key_len), self._text(val_ptr, val_len)
        if job.request is None:
            log.info("resp_set_header(%r) ignored: job %s is not a request", key, job.result_id)
            return
        job.request.resp_headers[key] = value

    # --- cache -------------------------------------------------------------------

    def cache_set(self, key_ptr: int, key_len: int, val_ptr: int, val_len: int, ttl: int, ident: int) -> int:
        job = self._job(ident, "cache_set")
        if job is None:
            return -1
        key, value = self._read(key_ptr, key_len), self._read(val_ptr, val_len)
        cache = job.capabilities.cache
        if cache is None:
            self._log_refusal(job, "cache_set")
            return -2
        try:
            cache.set(key, value, ttl)
        except CapabilityError as error:
            log.error("cache_set by %s failed: %s", job.runnable, error)
            return -2
        return 0

    def cache_get(self, key_ptr: int, key_len: int, ident: int) -> int:
        job = self._job(ident, "cache_get")
        if job is None:
            return -1
        key = self._read(key_ptr, key_len)
        if job.pending is not None:
            return -1
        cache = job.capabilities.cache
        if cache is None:
            return self._refuse(job, "cache_get")
        try:
            return self._pend(job, cache.get(key))
        except CacheMiss:
            return self._pend_error(job, "key not found")
        except CapabilityError as error:
            log.error("cache_get by %s failed: %s", job.runnable, error)
            return self._pend_error(job, str(error))

    # --- chaining (a reactr-wasm extension of the ABI) -------------------------------

    def run_job(self, name_ptr: int, name_len: int, data_ptr: int, data_len: int, ident: int) -> int:
        """Run job ``name`` with the given payload and wait; its output becomes the pending result.

        Returns the FFI size: ``n >= 0`` output bytes pending; ``n < -1`` an error
        of ``-n`` bytes pending (a RunErr in its JSON form, an unknown name, a
        timeout, the depth limit); ``-1`` nothing pending (bad ident, slot busy).
        """
        job = self._job(ident, "run_job")
        if job is None:
            return -1
        name, payload = self._text(name_ptr, name_len), self._read(data_ptr, data_len)
        if job.pending is not None:
            return -1
        if job.job_runner is None:
            return self._pend_error(job, "job chaining is not available in this host")
        if job.control.depth >= MAX_CHAIN_DEPTH:
            return self._pend_error(job, f"job chain depth limit ({MAX_CHAIN_DEPTH}) reached")
        try:
            output = job.job_runner(name, payload, job.control)
        except ReactrError as error:
            return self._pend_error(job, str(error))
        finally:
            self.current.job = job  # the nested job's instance cleared it: this guest goes on
        return self._pend(job, output)

    # --- outside world: HTTP, GraphQL, static files, database ----------------------

    def fetch_url(self, method: int, url_ptr: int, url_len: int, body_ptr: int, body_len: int, ident: int) -> int:
        job = self._job(ident, "fetch_url")
        if job is None:
            return -1
        url, body = self._text(url_ptr, url_len), self._read(body_ptr, body_len)
        if job.pending is not None:
            return -1
        client = job.capabilities.http
        if client is None:
            return self._refuse(job, "fetch_url")
        try:
            return self._pend(job, client.fetch(method, url, body, timeout=job.control.remaining()))
        except HostCallError as error:  # bad method or header encoding: -2, nothing pending
            log.info("fetch_url by %s refused: %s", job.runnable, error)
            return -2
        except CapabilityError as error:
            return self._failed(job, "fetch_url", error)

    def graphql_query(self, endpoint_ptr: int, endpoint_len: int, query_ptr: int, query_len: int, ident: int) -> int:
        job = self._job(ident, "graphql_query")
        if job is None:
            return -1
        endpoint, query = self._text(endpoint_ptr, endpoint_len), self._text(query_ptr, query_len)
        if job.pending is not None:
            return -1
        client = job.capabilities.graphql
        if client is None:
            return self._refuse(job, "graphql_query")
        try:
            return self._pend(job, client.query(endpoint, query, timeout=job.control.remaining()))
        except (CapabilityError, HostCallError) as error:
            return self._failed(job, "graphql_query", error)

    def get_static_file(self, name_ptr: int, name_len: int, ident: int) -> int:
        job = self._job(ident, "get_static_file")
        if job is None:
            return -1
        name = self._text(name_ptr, name_len)
        if job.pending is not None:
            return -1
        files = job.capabilities.static
        if files is None:
            return self._refuse(job, "get_static_file")
        try:
            return self._pend(job, files.read(name))
        except CapabilityError as error:
            return self._failed(job, "get_static_file", error)

    def db_exec(self, query_type: int, name_ptr: int, name_len: int, ident: int) -> int:
        job = self._job(ident, "db_exec")
        if job is None:
            return -1
        name = self._text(name_ptr, name_len)
        # Reactr's host crashed here when a result was pending; refusing is the safe reading.
        if job.pending is not None:
            return -1
        variables, job.ffi_vars = job.ffi_vars or [], None  # consumed by this call
        database = job.capabilities.db
        try:  # db_exec answers Reactr's own refusal text, in its order of checks (the query type first)
            return self._pend(job, db_exec(database, query_type, name, variables))
        except CapabilityError as error:
            if database is None and str(error) == NOT_ENABLED:
                return self._refuse(job, "db_exec")
            return self._failed(job, "db_exec", error)


def _drop_two(func: Callable[..., int | None]) -> Callable[..., int | None]:
    def swift_twin(*args: int) -> int | None:
        # Swift passes ident before its two context registers.
        return func(*args[:-2])

    return swift_twin
