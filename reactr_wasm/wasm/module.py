"""Compiling runnables: through the disk cache (``module_cache``), then the Reactr ABI check."""

from __future__ import annotations

from dataclasses import dataclass

from wasmtime import Engine, FuncType, MemoryType, Module, WasmtimeError

from reactr_wasm.capabilities.registry import GUARDS
from reactr_wasm.errors import ModuleError
from reactr_wasm.wasm.module_cache import (
    ModuleCache as ModuleCache,  # re-exported: the engine builds it with compile_module
)

# name -> (param count, result count), all i32 (reactr-abi.md §1.1)
REQUIRED_EXPORTS = {"allocate": (1, 1), "run_e": (3, 0)}
OPTIONAL_EXPORTS = {"deallocate": (2, 0), "_start": (0, 0), "init": (0, 0)}

# env imports the engine links: (params, results), all i32 (reactr-abi.md §2).
HOST_FUNCTIONS: dict[str, tuple[int, int]] = {
    "return_result": (3, 0),
    "return_error": (4, 0),
    "return_abort": (7, 0),
    "get_ffi_result": (2, 1),
    "add_ffi_var": (5, 1),
    "log_msg": (4, 0),
    "request_get_field": (4, 1),
    "request_set_field": (6, 1),
    "resp_set_header": (5, 0),
    "cache_set": (6, 1),
    "cache_get": (3, 1),
    "fetch_url": (6, 1),
    "graphql_query": (5, 1),
    "get_static_file": (3, 1),
    "db_exec": (4, 1),
    "run_job": (5, 1),  # reactr-wasm's own extension: chain a job
}
# What ``inspect`` lists an import under: the capability guarding it (the registry's
# host functions), or one of the groups every runnable may use without a grant.
# The rest (results, FFI results, run_job) is plumbing every runnable has.
LABELS: dict[str, str] = {
    "log_msg": "log",
    "request_get_field": "request",
    "request_set_field": "request",
    "resp_set_header": "request",
    **GUARDS,
}
SWIFT_EXTRA = 2  # the *_swift twins take two context registers after ident
WASI_MODULES = {"wasi_snapshot_preview1", "wasi_unstable"}
# Host functions whose effects reach beyond the job (another job, the network,
# shared state). A module without them can be stopped and run again from
# scratch unnoticed: WASI has no files, env or args, and stdio goes nowhere.
SIDE_EFFECTS = {"cache_set", "fetch_url", "graphql_query", "db_exec", "add_ffi_var", "run_job"}


@dataclass(frozen=True)
class ModuleInfo:
    """What ``inspect`` shows: exports, imports, capabilities and the verdict."""

    exports: list[str]
    imports: list[str]
    capabilities: list[str]
    problems: list[str]
    restartable: bool = False  # imports no host function with effects beyond the job

    @property
    def ok(self) -> bool:
        return not self.problems


def _signature(ty: object) -> tuple[int, int] | None:
    if not isinstance(ty, FuncType):
        return None
    if any(str(t) != "i32" for t in [*ty.params, *ty.results]):
        return None
    return len(ty.params), len(ty.results)


def check_abi(module: Module) -> ModuleInfo:
    """Check ``module`` against the Reactr guest ABI without instantiating it."""
    problems: list[str] = []
    exports = {e.name: e.type for e in module.exports}
    if not isinstance(exports.get("memory"), MemoryType):
        problems.append("missing export 'memory'")
    for name, wanted in {**REQUIRED_EXPORTS, **OPTIONAL_EXPORTS}.items():
        if name not in exports:
            if name in REQUIRED_EXPORTS:
                problems.append(f"missing export '{name}'")
            continue
        got = _signature(exports[name])
        if got != wanted:
            problems.append(f"export '{name}' must take {wanted[0]} i32 and return {wanted[1]} i32")

    imports: list[str] = []
    capabilities: set[str] = set()
    for item in module.imports:
        label = f"{item.module}.{item.name}"
        imports.append(label)
        if item.module in WASI_MODULES:
            continue
        name = item.name or ""
        base = name.removesuffix("_swift")
        if item.module != "env" or base not in HOST_FUNCTIONS:
            problems.append(f"imports unknown function '{label}'")
            continue
        params, results = HOST_FUNCTIONS[base]
        wanted = (params + (SWIFT_EXTRA if name != base else 0), results)
        if _signature(item.type) != wanted:
            problems.append(
                f"imports '{label}' with another signature than the ABI's ({wanted[0]} i32 -> {wanted[1]} i32);"
                " the pre-v0.9 destination-buffer functions are not supported"
            )
            continue
        if base in LABELS:
            capabilities.add(LABELS[base])
    effects = {i.name.removesuffix("_swift") for i in module.imports if i.module == "env" and i.name} & SIDE_EFFECTS
    return ModuleInfo(sorted(exports), imports, sorted(capabilities), problems, restartable=not effects)


def compile_module(engine: Engine, cache: ModuleCache, wasm: bytes, source: str) -> tuple[Module, ModuleInfo]:
    """Compile and check; raises ModuleError naming ``source`` and the reason."""
    if wasm[:4] != b"\0asm":
        raise ModuleError(f"{source}: not a WebAssembly module (bad magic bytes)")
    try:
        module = cache.load(engine, wasm)
    except WasmtimeError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "invalid module"
        raise ModuleError(f"{source}: cannot compile: {first_line}") from None
    info = check_abi(module)
    if not info.ok:
        raise ModuleError(f"{source}: " + "; ".join(info.problems))
    return module, info
