"""The repository page in a real browser: headless Chromium driven by Selenium through the local
server, with Basic credentials, under the page's own strict Content-Security-Policy.

It checks what a person sees (every package and version that ``Packages`` lists, per suite),
that the browser logs no console error (a CSP violation or a failed load would be one), and
that nothing but the page itself is fetched: no script, stylesheet, font, image or favicon,
from anywhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from debian.deb822 import Packages
from ghapt.auth.userfile import UserFile
from ghapt.bootstrap import Services
from ghapt.core.settings import Settings

from tests.support.debbuild import build_deb, control_text
from tests.support.servers import serve

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs chromium and chromium-driver from Debian (make system-deps)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver")

USER, PASSWORD = "alice", "page-browser-pass"
ARCHES = ("amd64", "arm64")
HOSTILE = '<script>alert(1)</script> <ghapt:base> "quoted" & <img src=x>'


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    releases = tmp_path / "releases"
    build_deb(releases / "v1.0", "hello-ghapt", "1.0-1", "all")
    build_deb(releases / "v1.1", "hello-ghapt", "1.1~rc1-1", "all", filename="hello-ghapt_1.1.rc1-1_all.deb")
    build_deb(releases / "v3.0", "libdemo1", "2:3.0-1", "amd64", extra={"Source": "libdemo (3.0-1)"})
    build_deb(releases / "v3.0", "libdemo1", "2:3.0-1", "arm64", extra={"Source": "libdemo (3.0-1)"})
    # Markup in control data must reach the page as text, never as markup or a placeholder.
    build_deb(
        releases / "v4.0",
        "tricky",
        "4.0-1",
        "amd64",
        control=control_text("tricky", "4.0-1", "amd64", description=HOSTILE + "\n long text"),
    )
    UserFile(tmp_path / "state" / "users.json").add(USER, PASSWORD)
    settings = Settings.from_env({}, releases_dir=releases, state_dir=tmp_path / "state")
    services = Services(settings, {})
    assert services.indexer.rebuild().changed
    with serve(services) as server:
        yield server.url, services


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _published(url: str) -> set[tuple[str, str, str]]:
    """(package, version, architecture) of every stanza apt would see in stable."""
    out = set()
    for arch in ARCHES:
        r = requests.get(f"{url}/dists/stable/main/binary-{arch}/Packages", auth=(USER, PASSWORD), timeout=10)
        assert r.status_code == 200
        out |= {(p["Package"], p["Version"], p["Architecture"]) for p in Packages.iter_paragraphs(r.text)}
    return out


def test_the_page_lists_what_packages_lists_with_no_console_error_and_nothing_external(
    repo: tuple[str, Services], browser: Any
) -> None:
    url, services = repo
    browser.execute_cdp_cmd("Network.enable", {})
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
    browser.get("about:blank")
    browser.get_log("performance")  # reading the log empties it: from here on, only our page
    browser.get(f"{url}/")

    assert browser.title == "ghapt APT repository"
    rows = browser.find_elements("css selector", "#suite-stable tbody tr")
    shown = set()
    for row in rows:
        cells = [c.text for c in row.find_elements("css selector", "td")]
        shown.add((cells[0], cells[1], cells[2]))
    assert shown == _published(url)
    assert ("libdemo1", "2:3.0-1", "arm64") in shown
    assert ("hello-ghapt", "1.1~rc1-1", "all") in shown

    # Hostile control data is text: no element came of it, and no placeholder was filled in it.
    assert not browser.find_elements("css selector", "main script, main img")
    tricky = browser.find_element("xpath", "//td[code='tricky']")
    assert tricky.get_attribute("title") == HOSTILE

    # The header names the head commit; the client setup is for this very server.
    head = services.store.head()
    assert head
    assert head in browser.find_element("css selector", "header").text
    setup = browser.find_element("id", "setup").text
    assert f"URIs: {url}/" in setup
    assert f"machine {url} login" in setup
    assert " ".join(services.signer.fingerprint[i : i + 4] for i in range(0, 40, 4)) in setup

    # No console errors (CSP violations and failed loads are logged as SEVERE).
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    # Nothing but the page itself was requested, and the page loaded no resource at all.
    # (The browser's own pages, chrome://..., are not the page's doing.)
    requested = [
        msg["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if (msg := json.loads(entry["message"])["message"])["method"] == "Network.requestWillBeSent"
        and not msg["params"]["request"]["url"].startswith(("chrome://", "chrome-untrusted://"))
    ]
    assert requested == [f"{url}/"]
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_without_credentials_the_browser_gets_the_basic_challenge(
    repo: tuple[str, Services], browser: Any
) -> None:
    url, _ = repo
    r = requests.get(f"{url}/", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="ghapt"'
    browser.get(f"{url}/index.html")
    assert "ghapt APT repository" not in browser.page_source
