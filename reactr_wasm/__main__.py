"""``python -m reactr_wasm``: the same as the ``reactr-wasm`` command."""

from reactr_wasm.cli import main

raise SystemExit(main())
