"""``python -m reactr_wasm``: the same as the ``reactr-wasm`` command."""

from .cli import main

raise SystemExit(main())
