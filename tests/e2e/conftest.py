"""Real-browser fixtures: one Streamlit server per test session, Debian chromium via Playwright.

Reusable by every page's browser tests::

    @pytest.mark.browser
    def test_my_page(app_page, streamlit_idle, shots):
        app_page.get_by_role("link", name="My page").click()
        streamlit_idle(app_page)
        shots.save(app_page.locator(".js-plotly-plot").first, "my-page")

Fixtures:
    app_url: base URL of the server (``python -m streamlit run app.py`` from the repo root on a
        free loopback port, started once per session, terminated by PID at the end).
    page: pytest-playwright's page, launched with ``/usr/bin/chromium`` (never ``playwright install``).
    app_page: ``page`` opened on ``app_url`` once the first page has rendered.
    streamlit_idle: ``wait(page)`` returns when Streamlit has finished the current rerun.
    shots: saves screenshots into the test's ``test-results/<test>/`` folder (gitignored).

Tests here are marked ``browser`` automatically and skipped when chromium is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit_server import ROOT, run_streamlit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RERUN_TIMEOUT_MS = 120_000  # a rerun on 2 shared cores can take a while (uploads, big slices)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(pytest.mark.skip(reason=f"{CHROMIUM} not found (apt-get install chromium)"))


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the app once per session and yield its URL; the server log goes to a temp file."""
    with run_streamlit(ROOT / "app.py", tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launch options: Debian's chromium, no outside network chatter."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1100}}


def wait_streamlit_idle(page, timeout_ms: int = RERUN_TIMEOUT_MS) -> None:
    """Return once Streamlit shows no running indicator (the rerun has finished)."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app) return false;
            const running = document.querySelector('[data-testid="stStatusWidget"]');
            return !running || !/running/i.test(running.innerText || '');
        }""",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(300)  # let the last deltas paint


@pytest.fixture
def streamlit_idle() -> Callable[..., None]:
    return wait_streamlit_idle


@pytest.fixture
def app_page(page, app_url: str):
    """The app's start page, fully rendered."""
    from playwright.sync_api import expect

    page.set_default_timeout(RERUN_TIMEOUT_MS)
    expect.set_options(timeout=RERUN_TIMEOUT_MS)
    page.goto(app_url)
    expect(page.locator('[data-testid="stHeading"]').first).to_be_visible(timeout=RERUN_TIMEOUT_MS)
    wait_streamlit_idle(page)
    return page


class Shots:
    """Screenshot helper writing ``<n>-<name>.png`` into one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def save(self, target, name: str, **kwargs) -> Path:
        """Screenshot a page or locator; returns the file path."""
        self._n += 1
        path = self.folder / f"{self._n:02d}-{name}.png"
        target.screenshot(path=str(path), **kwargs)
        return path


@pytest.fixture
def shots(output_path: str) -> Shots:
    return Shots(Path(output_path))


@pytest.fixture
def segmented_lgg_page(page, app_url: str, streamlit_idle):
    """The Segment page with a shared LGG test patient opened and segmented by the shipped model."""
    from playwright.sync_api import expect

    page.set_default_timeout(180_000)
    page.goto(f"{app_url}/segment")
    expect(page.get_by_role("heading", name="Segment")).to_be_visible(timeout=180_000)
    streamlit_idle(page)
    page.get_by_role("button", name="Use an LGG test patient (shared data)").click()
    streamlit_idle(page)
    page.get_by_role("button", name="Segment", exact=True).click()
    streamlit_idle(page, timeout_ms=300_000)
    return page
