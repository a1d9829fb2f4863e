"""The web page in a real Chromium (Debian's ``chromium`` and
``chromium-driver``), driven by Selenium, against the real server over
HTTP: each flow a person would follow, with screenshots at 1280 and 390 px
wide in tests/screenshots/ (not committed) and no Content-Security-Policy
violation, or any other error, in the browser's console."""

import hashlib
import os
import shutil
import time

import pytest
import requests

from . import seed
from .helpers import PASSWORD, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "screenshots")
# Generous: a loaded machine (CI shares two cores) can take seconds per page.
WAIT_S = 60

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("Chromium is not installed: apt-get install chromium chromium-driver "
                "(.ci/run installs both when it runs as root)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("web") / "data")
    seed.add_user(server.rt, "alice")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                              options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture
def page(site, browser):
    """The browser, logged in as alice, its console checked after the test."""
    browser.get_log("browser")  # what earlier tests left
    if not browser.get_cookies() or "/login" in _go(browser, site, "/"):
        log_in(browser, site)
    yield Page(browser, site)
    problems = [e for e in browser.get_log("browser")
                if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    assert problems == []


def _go(driver, site, path):
    driver.get(site.url + path)
    return driver.current_url


def log_in(driver, site):
    """Log in with the keyboard only: type, Tab, type, Enter."""
    driver.get(site.url + "/")
    assert "/login" in driver.current_url
    field = driver.switch_to.active_element  # the user name field has the focus
    assert field.get_attribute("id") == "username"
    field.send_keys("alice", Keys.TAB)
    driver.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    WebDriverWait(driver, WAIT_S).until(ec.title_contains("Overview"))


class Page:
    def __init__(self, driver, site):
        self.driver = driver
        self.site = site

    def go(self, path):
        self.driver.get(self.site.url + path)

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, condition):
        # A page being replaced by the next one leaves stale elements: look again.
        return WebDriverWait(self.driver, WAIT_S,
                             ignored_exceptions=(StaleElementReferenceException,)
                             ).until(condition)

    def text(self):
        return self.find("body").text

    def button(self, words):
        return self.driver.find_element(By.XPATH, f'//button[normalize-space()="{words}"]')

    def link(self, words):
        return self.driver.find_element(By.XPATH, f'//a[normalize-space()="{words}"]')

    def screenshots(self, name):
        """Screenshots at 1280 and 390 px wide; at 390 nothing scrolls sideways."""
        os.makedirs(SCREENSHOTS, exist_ok=True)
        for width in (1280, 390):
            self.driver.set_window_size(width, 900)
            # The page has taken the new width (reading scrollWidth lays it out).
            self.wait(lambda d, w=width: abs(d.execute_script(
                "return window.innerWidth") - w) <= 20)
            wide = self.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{name} at {width} px scrolls {wide} px sideways"
            self.driver.save_screenshot(os.path.join(SCREENSHOTS, f"{name}-{width}.png"))
        self.driver.set_window_size(1280, 900)

    def user_token(self):
        from sync import auth
        from sync.db import database
        with database.connection_context():
            return auth.issue_user_token(self.site.rt, "alice")

    def api(self, method, path, token=None, **kw):
        headers = {"Authorization": f"Bearer {token or self.user_token()}", **kw.pop("headers", {})}
        return requests.request(method, self.site.url + "/api/v1/sync" + path, headers=headers,
                                timeout=60, **kw)


def test_log_in_and_see_the_overview(page):
    assert "Overview" in page.text() and "alice" in page.text()
    page.screenshots("overview")
    page.go("/login")
    assert "Overview" in page.driver.title  # logged in: the form sends you on


def test_upload_with_a_progress_bar_then_list_and_download_it(page, tmp_path):
    data = os.urandom(700 * 1024) + b"end"
    local = tmp_path / "Big report.pdf"
    local.write_bytes(data)
    page.go("/files")
    # 256 KiB chunks (the smallest the API allows): three chunks, so the bar moves.
    page.driver.execute_script("document.getElementById('upload').dataset.chunkSize = 262144")
    page.find("#upload-files").send_keys(str(local))
    page.button("Upload").click()
    page.wait(lambda d: page.find("#upload-status").text.startswith("Uploaded"))
    bar = page.find("#upload-bar")
    assert float(bar.get_attribute("value")) == float(bar.get_attribute("max")) == 1
    page.screenshots("upload")
    page.wait(lambda d: "Big report.pdf" in page.find("table.files").text)
    assert "Web page" in page.find("table.files").text
    page.screenshots("files")
    page.link("Big report.pdf").click()
    target = page.driver.downloads / "Big report.pdf"
    page.wait(lambda d: target.exists() and target.stat().st_size == len(data))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_resolve_a_conflict_with_keep_both(page):
    seed.put(page.site.rt, "alice", "notes.txt", b"first", mtime=0)
    laptop = page.api("POST", "/devices", json={"name": "Laptop"}).json()
    kobo = page.api("POST", "/devices", json={"name": "Kobo"}).json()
    rev = page.api("GET", "/changes", headers={"X-Device-Id": laptop["id"]}).json()
    base = [c for c in rev["changes"] if c["path"] == "notes.txt"][0]["rev"]
    for device, text in ((laptop, b"laptop's edit"), (kobo, b"kobo's edit")):
        _upload(page, device["token"], "notes.txt", text, base)
    page.go("/conflicts")
    assert "From Kobo" in page.text() and "On the server" in page.text()
    page.button("Keep Kobo's version")  # the resolutions name the device
    page.screenshots("conflicts")
    page.button("Keep both").click()
    page.wait(ec.title_contains("Conflicts"))
    assert "kept both versions" in page.text()
    assert "No conflicts" in page.text()
    page.go("/files")
    assert "notes (conflict Kobo " in page.text()


def _upload(page, token, path, data, base_rev):
    session = page.api("POST", "/upload", token, json={
        "path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "base_rev": base_rev}).json()
    if session["received"] != [0]:
        page.api("PUT", f"/upload/{session['id']}/chunks/0", token, data=data)
    return page.api("POST", f"/upload/{session['id']}/complete", token).json()


def test_add_a_device_and_see_its_token_once(page):
    page.go("/devices")
    page.find("#device-name").send_keys("Phone")
    page.find("#device-platform").send_keys("android")
    page.button("Add device").click()
    page.wait(ec.title_contains("Phone"))
    token = page.find("#token").get_attribute("value").strip()
    password = page.find("#app-password").text
    assert "/dav/files/alice/" in page.find("#dav-url").text
    page.screenshots("device-added")
    assert page.api("GET", "/devices", token).status_code == 200
    page.go("/devices")
    assert "Phone" in page.text()
    assert token not in page.driver.page_source and password not in page.driver.page_source
    page.screenshots("devices")


def test_remove_a_device_after_a_confirmation(page):
    phone = page.api("POST", "/devices", json={"name": "Old tablet"}).json()
    page.go("/devices")
    row = page.driver.find_element(By.XPATH, '//tr[td[contains(., "Old tablet")]]')
    row.find_element(By.XPATH, './/a[contains(., "Remove")]').click()
    assert "Remove this device?" in page.text()
    page.screenshots("device-remove")
    assert page.api("GET", "/devices", phone["token"]).status_code == 200
    page.button("Remove").click()
    page.wait(lambda d: "Removed “Old tablet”" in page.text())
    assert page.api("GET", "/devices", phone["token"]).status_code == 401


def test_overwrite_through_the_api_then_restore_from_the_history_page(page):
    laptop = page.api("POST", "/devices", json={"name": "Work laptop"}).json()
    first = _upload(page, laptop["token"], "essay.md", b"my careful words", None)
    _upload(page, laptop["token"], "essay.md", b"oops, overwritten", first["rev"])
    page.go("/files")
    row = page.driver.find_element(By.XPATH, '//tr[td[contains(., "essay.md")]]')
    row.find_element(By.XPATH, './/a[contains(., "History")]').click()
    page.wait(ec.title_contains("History of essay.md"))
    assert "Work laptop" in page.text() and "current" in page.text()
    page.screenshots("history")
    page.driver.find_element(By.XPATH, '//tr[td[contains(., "16 bytes")]]//button').click()
    page.wait(lambda d: "Restored “essay.md”" in page.text())
    assert page.api("GET", "/download/essay.md").content == b"my careful words"


def test_restore_from_the_trash(page):
    laptop = page.api("POST", "/devices", json={"name": "Reader"}).json()
    put = _upload(page, laptop["token"], "books/Lost.epub", b"a book worth keeping", None)
    page.api("POST", "/report", laptop["token"], json={"changes": [
        {"op": "delete", "path": "books/Lost.epub", "base_rev": put["rev"]}]})
    page.go("/trash")
    assert "books/Lost.epub" in page.text() and "Reader" in page.text()
    page.screenshots("trash")
    row = page.driver.find_element(By.XPATH, '//tr[td[contains(., "books/Lost.epub")]]')
    row.find_element(By.XPATH, './/button[contains(., "Restore")]').click()
    page.wait(lambda d: "Restored “books/Lost.epub”." in page.text())
    assert page.api("GET", "/download/books/Lost.epub").content == b"a book worth keeping"


def test_preview_then_apply_a_rewind(page):
    tablet = page.api("POST", "/devices", json={"name": "Infected PC"}).json()
    put = _upload(page, tablet["token"], "photos/cat.jpg", b"a cat", None)
    time.sleep(1.1)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    time.sleep(1.1)
    _upload(page, tablet["token"], "photos/cat.jpg", b"ENCRYPTED", put["rev"])
    _upload(page, tablet["token"], "photos/README-RANSOM.txt", b"pay up", None)
    page.go("/rewind")
    field = page.find("#at")
    page.driver.execute_script("arguments[0].value = arguments[1]", field, at)
    page.find("#rewind-prefix").send_keys("photos")
    from selenium.webdriver.support.ui import Select
    Select(page.find("#device")).select_by_visible_text("Infected PC")
    page.button("Show what would change").click()
    page.wait(lambda d: "2 files would change" in page.text())
    assert "README-RANSOM.txt" in page.text() and "is deleted" in page.text()
    assert page.api("GET", "/download/photos/cat.jpg").content == b"ENCRYPTED"  # not yet
    page.screenshots("rewind")
    page.button("Rewind 2 files").click()
    page.wait(lambda d: "Rewound 2 files" in page.text())
    assert page.api("GET", "/download/photos/cat.jpg").content == b"a cat"
    assert page.api("GET", "/download/photos/README-RANSOM.txt").status_code == 404


def test_log_out(page):
    page.button("Log out").click()
    page.wait(ec.title_contains("Log in"))
    assert "You are logged out." in page.text()
    page.screenshots("login")
    page.go("/devices")
    assert "/login" in page.driver.current_url
