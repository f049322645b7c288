"""A real maskserve on 127.0.0.1 serving the shipped model, and Debian's headless chromium
(driven by Selenium) for the page's tests.

Nothing downloads a browser or a driver: both come from Debian (``scripts/test`` installs
``chromium`` and ``chromium-driver`` on CI), and with the driver's path given Selenium
skips Selenium Manager.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_harness import (
    HAS_SHIPPED,
    MODEL,
    RunningServer,
    running_server,
    server_settings,
)
from browser_tools import BROWSER_WAIT_S

from maskserve.models.registry import ZOO_DIR

__all__ = ["MODEL"]

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def web_server() -> Iterator[RunningServer]:
    if not HAS_SHIPPED:
        pytest.skip("needs the shipped model (the page test checks real masks)")
    with running_server(server_settings(ZOO_DIR, models=[MODEL])) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium at 1300×900 CSS pixels, device pixel ratio 1."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "needs Debian's chromium and chromedriver "
            "(apt-get install chromium chromium-driver; scripts/test does it as root)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (dev extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",  # small /dev/shm in containers
        "--disable-gpu",
        "--window-size=1300,900",
        "--force-device-scale-factor=1",
        "--use-fake-device-for-media-stream",  # a synthetic camera for the webcam test
        "--use-fake-ui-for-media-stream",  # and camera permission granted
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(BROWSER_WAIT_S)
    driver.set_page_load_timeout(BROWSER_WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
