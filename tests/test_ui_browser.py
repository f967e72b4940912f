"""The page in a real browser: Debian's chromium driven by Selenium through Debian's
chromedriver (paths given: nothing is downloaded). Hermetic: the browser may reach
127.0.0.1 only; any other request fails the test. Without chromium the suite is skipped
with the reason, except under CI=true, where it fails.

JANITOR_SCREENSHOTS=DIR (``make screenshots``): a PNG of each state is written there."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from urllib.parse import urlparse

import pytest

from tests.conftest import fake_ckpt, fake_run

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OLD = 1_600_000_000.0
SHOTS = os.environ.get("JANITOR_SCREENSHOTS")


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import gradio  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[dev]')"
    return None


why = _missing()
if why is not None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser suite cannot run under CI: {why}", pytrace=False)
    pytest.skip(f"browser suite skipped: {why}", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="janitor-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1400,1000",
                 # every host but 127.0.0.1 resolves to nothing: a request elsewhere fails
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def elsewhere(driver) -> list[str]:
    """Every URL the page asked for that is not on 127.0.0.1."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if urlparse(url).scheme in ("http", "https", "ws", "wss") and (
                urlparse(url).hostname != "127.0.0.1"
            ):
                urls.append(url)
    return urls


def text_of(driver, elem_id: str) -> str:
    return driver.find_element(By.ID, elem_id).text


def wait_text(driver, elem_id: str, wanted: str, timeout: float = 30) -> str:
    WebDriverWait(driver, timeout).until(lambda d: wanted in text_of(d, elem_id))
    return text_of(driver, elem_id)


def click(driver, elem_id: str) -> None:
    el = driver.find_element(By.ID, elem_id)
    button = el if el.tag_name == "button" else el.find_element(By.TAG_NAME, "button")
    WebDriverWait(driver, 30).until(lambda d: button.is_enabled())
    driver.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", button)


def shot(driver, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def choose_run(driver, name: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "#run input")
    driver.execute_script("arguments[0].scrollIntoView();", box)
    box.click()
    pick = f'#run li[role=option][aria-label="{name}"]'
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, pick))
    driver.find_element(By.CSS_SELECTOR, pick).click()
    WebDriverWait(driver, 10).until(lambda d: box.get_attribute("value") == name)


def tab(driver, title: str) -> None:
    button = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                  if b.text.strip() == title)  # fmt: skip
    button.click()


def test_the_page_in_a_browser(browser, tmp_path, cli):
    from fixtures.gen import write_run
    from janitor.ui.serve import launch

    logs = tmp_path / "logs"
    fake_run(logs, "alice", [100, 200, 300, 400], start=OLD)
    fake_run(logs, "bob", [1000, 2000, 3000], start=OLD)
    write_run(logs, "carol", steps=(10, 20), mtime_start=OLD)
    planned = json.loads(cli("prune", str(logs / "alice"), "-n", "--json").output)
    to_remove = sorted(f["path"] for s in planned["runs"][0]["sets"] if s["action"] == "remove"
                       for f in s["files"])  # fmt: skip
    demo = launch(str(logs), port=free_port(), block=False)
    try:
        browser.get(demo.local_url)
        assert "alice" in wait_text(browser, "runs", "carol")
        assert "free space" in text_of(browser, "header")
        shot(browser, "runs")

        # dry run, then prune: what the dry run showed, and what prune -n --json planned
        click(browser, "dry-run")
        assert "3 sets to remove" in wait_text(browser, "plan-text", "Dry run under")
        shot(browser, "plan")
        assert sorted(str(p) for p in (logs / "alice").glob("*.pth")) != []
        click(browser, "prune")
        wait_text(browser, "plan-text", "files removed")
        shot(browser, "pruned")
        left = {str(p) for p in (logs / "alice").glob("*.pth")}
        assert not left & set(to_remove) and len(left) == 2
        from janitor import api

        journaled = sorted(r["path"] for r in api.log(str(logs)).records if r["event"] == "remove")
        assert journaled == to_remove

        # a file changed between Dry run and Prune: the new plan, nothing unplanned removed
        choose_run(browser, "bob")
        click(browser, "dry-run")
        wait_text(browser, "plan-text", "2 sets to remove")
        fake_ckpt(logs / "bob" / "G_1000.pth", payload=4096, mtime=OLD + 10)
        click(browser, "prune")
        text = wait_text(browser, "plan-text", "The run changed since the dry run")
        assert "step 1000" in text
        shot(browser, "changed")
        assert sorted(p.name for p in (logs / "bob").glob("*.pth")) == [
            "D_1000.pth", "D_3000.pth", "G_1000.pth", "G_3000.pth"]  # fmt: skip

        # to the trash, then restore
        click(browser, "dry-run")
        wait_text(browser, "plan-text", "1 sets to remove")
        browser.find_element(By.CSS_SELECTOR, "#trash input").click()
        click(browser, "prune")
        wait_text(browser, "plan-text", "moved to the trash")
        tab(browser, "Trash")
        click(browser, "list-trash")
        wait_text(browser, "trash-list", "1000#1")
        click(browser, "restore")
        wait_text(browser, "restore-text", "Restored step 1000")
        shot(browser, "restored")
        assert (logs / "bob" / "G_1000.pth").exists()

        # extract a small model of a chosen step
        choose_run(browser, "carol")
        tab(browser, "Plan and prune")
        click(browser, "dry-run")
        wait_text(browser, "plan-text", "Dry run under")
        tab(browser, "Small models, finalize, pins")
        label = next(el for el in browser.find_elements(By.CSS_SELECTOR, "#steps label")
                     if el.text.strip() == "10")  # fmt: skip
        label.click()
        click(browser, "extract")
        wait_text(browser, "status", "Small models:", timeout=60)
        shot(browser, "extracted")
        assert len(list((logs / "carol").glob("carol_*.pth"))) == 1

        choose_run(browser, "bob")
        tab(browser, "Journal")
        click(browser, "show-journal")
        wait_text(browser, "journal", "restore")
        shot(browser, "journal")
        assert elsewhere(browser) == []
    finally:
        demo.close()
