"""The dashboard in a real headless Chromium (Playwright driving Debian's ``chromium``) over a real ``serve``.

Load ``/ui``, see the runnables, run a job with the try-it form and see its
answer and headers, see jobs - a failed one too - arrive in the live list, and
the token flow when the server wants one. A screenshot of the page goes to
``tests/artifacts/dashboard.png`` (git-ignored; ``docs/dashboard.png`` is one).

Needs ``/usr/bin/chromium`` (``scripts/setup-dev`` installs Debian's) and the
``playwright`` package; without them these tests fail and say so, they do not skip.
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture fails these tests with the reason
    expect = None

from tests.conftest import ROOT, RUNNABLES
from tests.services import serve_process
from tests.test_cli import post

pytestmark = pytest.mark.timeout(120)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "dashboard-test-token"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"the dashboard tests need Debian's chromium at {CHROMIUM}: apt-get install chromium "
                    "(scripts/setup-dev installs it)")  # fmt: skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        pytest.fail("the dashboard tests need the playwright package: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # Script errors, not the console's notes on answers >= 400, which the tests ask for on purpose
    opened.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    opened.errors = errors
    yield opened
    context.close()


def runnables(tmp_path: Path, config: str = "") -> Path:
    folder = tmp_path / "runnables"
    folder.mkdir()
    for name in ("hello-echo", "return-err"):
        shutil.copy(RUNNABLES / f"{name}.wasm", folder / f"{name}.wasm")
    if config:
        (folder / "reactr.toml").write_text(config)
    return folder


def run_job(page: Any, runnable: str, body: str, mode: str = "then") -> None:
    page.select_option("#try-runnable", runnable)
    page.select_option("#try-mode", mode)
    page.fill("#try-body", body)
    page.click("#try-run")


def test_the_dashboard_shows_runnables_runs_jobs_and_lists_them_live(page: Any, tmp_path: Path) -> None:
    with serve_process(["--dir", runnables(tmp_path)]) as (_, base):
        page.goto(f"{base}/ui")
        page.wait_for_selector('#runnables tr[data-runnable="hello-echo"]', timeout=WAIT_MS)
        row = page.locator('#runnables tr[data-runnable="hello-echo"]')
        assert "ABI ok" in row.inner_text() and "no side effects" in row.inner_text()
        assert "reuse, size 1" in row.inner_text()
        assert page.locator("#server-state").inner_text() == "serving"
        expect(page.locator("#feed-state")).to_have_text("live", timeout=WAIT_MS)

        run_job(page, "hello-echo", "playwright")
        expect(page.locator("#try-answer")).to_have_text("hello playwright", timeout=WAIT_MS)
        assert page.locator("#try-status").inner_text() == "200 OK"
        assert page.locator("#try-request").inner_text() == "POST /do/hello-echo?then=true"
        headers = page.locator("#try-headers").inner_text()
        assert "content-type\tapplication/octet-stream" in headers and "x-request-id" in headers

        run_job(page, "hello-echo", "later", mode="async")  # queued, then read back with GET /then/{id}
        expect(page.locator("#try-answer")).to_have_text("hello later", timeout=WAIT_MS)
        assert page.locator("#try-request").inner_text().startswith("POST /do/hello-echo → GET /then/")

        run_job(page, "return-err", "x")  # the runnable's own error: 400 with its JSON body
        expect(page.locator("#try-status")).to_have_text("400 Bad Request", timeout=WAIT_MS)
        assert page.locator("#try-answer").inner_text() == '{"code":400,"message":"job failed"}'
        assert "x-reactr-error\tRunErr" in page.locator("#try-headers").inner_text()

        assert post(f"{base}/do/hello-echo?then=true", b"from curl") == (200, b"hello from curl")  # another client
        failed = page.locator('#jobs tr[data-outcome="run_err"]')
        failed.wait_for(timeout=WAIT_MS)
        assert "return-err" in failed.inner_text() and '{"code":400,"message":"job failed"}' in failed.inner_text()
        expect(page.locator("#jobs tbody tr")).to_have_count(4, timeout=WAIT_MS)
        live = [line.split("\t") for line in page.locator("#jobs tbody").inner_text().splitlines()]
        assert [(cells[1], cells[2]) for cells in live] == [
            ("hello-echo", "succeeded"), ("return-err", "run_err"), ("hello-echo", "succeeded"),
            ("hello-echo", "succeeded"),
        ]  # newest first: curl's, the failure, the async job, the first one  # fmt: skip
        expect(row).to_contain_text("succeeded 3", timeout=WAIT_MS)  # the counters follow (polled every 2 s)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert page.errors == []


def test_with_a_token_the_page_asks_for_it_and_keeps_it_out_of_urls(page: Any, tmp_path: Path) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with serve_process(["--dir", runnables(tmp_path, f'[server]\nauth_tokens = ["{TOKEN}"]\n')]) as (_, base):
        page.goto(f"{base}/ui")  # the page itself is public
        page.wait_for_selector("#token-form:not([hidden])", timeout=WAIT_MS)
        assert page.locator("#server-state").inner_text() == "token needed"
        assert page.locator("#runnables tbody tr").count() == 0  # nothing about the server without the token

        page.fill("#token", "wrong")
        page.click("#token-form button")
        expect(page.locator("#server-state")).to_have_text("token refused", timeout=WAIT_MS)
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        page.wait_for_selector('#runnables tr[data-runnable="return-err"]', timeout=WAIT_MS)
        expect(page.locator("#feed-state")).to_have_text("live", timeout=WAIT_MS)
        run_job(page, "return-err", "x")
        page.locator('#jobs tr[data-outcome="run_err"]').wait_for(timeout=WAIT_MS)
        assert page.locator("#try-status").inner_text().startswith("400")

        page.reload()  # kept for this tab (sessionStorage): not asked again
        page.wait_for_selector('#runnables tr[data-runnable="hello-echo"]', timeout=WAIT_MS)
        assert page.locator("#token-form").is_hidden()
        assert all(TOKEN not in url for url in requested)  # sent as a header only, never in a URL
        with urllib.request.urlopen(f"{base}/ui", timeout=5) as response:
            assert TOKEN not in response.read().decode()
        page.click("#forget-token")
        page.wait_for_selector("#token-form:not([hidden])", timeout=WAIT_MS)
        assert page.errors == []
