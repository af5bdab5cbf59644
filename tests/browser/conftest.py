"""Browser tests of the admin: Playwright for Python drives Debian's ``chromium`` headless (its path
from ``shutil.which``: nothing downloads a browser; ``make test`` installs chromium with apt when
missing, scripts/ensure-test-tools.sh) against pytest-django's ``live_server`` (a real threaded
server on the test database, serving the admin's static files from the apps' folders).

Screenshots of each flow go to ``var/test-output/browser/`` (``VAR_DIR``), and one of the page as it
was when a test failed (``FAILED-<test>.png``). Select these tests with ``-m browser``, leave them
out with ``-m "not browser"``.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import PASSWORD, UserFactory

SCREENSHOTS = Path(settings.VAR_DIR) / "test-output" / "browser"
TIMEOUT_MS = 15_000
# Running as root in a container (no user namespaces for the sandbox, a small /dev/shm) and on a closed
# network (no background connections to Google's hosts).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip

_taken: list[Path] = []


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter):
    if _taken:
        terminalreporter.write_line(f"browser screenshots ({len(_taken)}): {SCREENSHOTS}")


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: `make test` installs it (scripts/ensure-test-tools.sh), "
                    'or leave these tests out with -m "not browser"')  # fmt: skip
    # Playwright's sync API keeps an event loop running in this thread while it is started; Django
    # would take the tests' own ORM calls for calls from async code. Allowed only meanwhile.
    for stale in SCREENSHOTS.glob("*.png"):  # this run's screenshots only
        stale.unlink()
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        screenshot(page, f"FAILED-{request.node.name}")
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    _taken.append(path)
    return path


@pytest.fixture
def shot(request):
    """``shot(page, "step")`` saves ``<test>--<step>.png``."""
    test = request.node.name.removeprefix("test_")
    return lambda page, step: screenshot(page, f"{test}--{step}")


@pytest.fixture
def staff(transactional_db):
    return UserFactory(username="staffer", is_staff=True, is_superuser=True)


def log_in(page, username: str, password: str = PASSWORD, *, next_url: str = "/admin/") -> None:
    """Through the real login form."""
    page.goto(next_url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()


@pytest.fixture
def staff_page(page, staff):
    log_in(page, staff.username)
    return page
