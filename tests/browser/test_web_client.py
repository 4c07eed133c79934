"""The reference web page (web/) in a real browser: headless Chromium, driven by Selenium, against
the local run (the compiled `local` binary: the function on 127.0.0.1, the page on localhost).

Every request the page makes is cross-origin, so Chromium checks the function's CORS answers: the
page must be able to read ETag and Retry-After, get 304s for its If-None-Match, show problems, and
be refused when its origin is not allowed. What the page saw is read from the page; what the
function answered is read from its log lines, so each test checks one against the other.

Run by scripts/browser-test.sh, which installs the browser and the pinned tools and builds `local`.
"""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BIN = Path(os.environ.get("LOCAL_BIN", ROOT / "target/debug/local"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# Where the screenshot of the finished page goes (docs/web-client.png is a copy of one).
SCREENSHOT = Path(os.environ.get("WEB_CLIENT_SCREENSHOT", ROOT / "target/browser/web-client.png"))
# Headless, and nothing that reaches for the network on its own (updates, sync, QUIC probes).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,900",
]
DATASTORE = "demo-datastore"
FINISHED = ("done", "problem", "failed")


class LocalRun:
    """The local run on free ports; its stdout (banner, then one JSON line per request) is kept."""

    def __init__(self):
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("ALLOWED_ORIGINS", "ALLOWED_DATASTORE_IDS", "UPSTREAM_TIMEOUT_MS")
        }
        # One attempt: the throttled job's 429 comes at once instead of after the SDK's backoff.
        env["UPSTREAM_MAX_ATTEMPTS"] = "1"
        # Outranked by the stand-in: were it used, every call would fail.
        env["AWS_ENDPOINT_URL_HEALTHLAKE"] = "http://127.0.0.1:1"
        self.proc = subprocess.Popen(
            [str(LOCAL_BIN), "--port", "0", "--healthlake-port", "0", "--page-port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.banner = []
        for line in self.proc.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.startswith("Stop with Ctrl-C."):
                break
        banner = "\n".join(self.banner)
        self.api = next(
            (l.split(" on ", 1)[1] for l in self.banner if l.startswith("export-job-status is listening on ")),
            None,
        )
        self.page_url = next((l[len("Web page: "):] for l in self.banner if l.startswith("Web page: ")), None)
        assert self.api and self.page_url, f"no addresses in the banner:\n{banner}"
        self.page_origin = self.page_url.split("/?", 1)[0]
        self.lines = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def page(self, job, origin=None):
        return f"{origin or self.page_origin}/?api={self.api}&datastore={DATASTORE}&job={job}"

    def requests(self, job, method="GET"):
        """The function's log line for each request about `job` (any job: None), in order."""
        logged = [json.loads(l) for l in list(self.lines) if '"message":"request"' in l]
        return [r for r in logged if job in (None, r.get("job_id")) and r.get("method") == method]

    def wait_for_requests(self, job, count, method="GET"):
        deadline = time.monotonic() + 5
        while len(self.requests(job, method)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests(job, method)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def run():
    local = LocalRun()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # A fresh profile every run: no cached preflight, no leftover state.
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def watch(browser, url, until=FINISHED, timeout=30):
    """Opens the page on `url` and waits until its state is one of `until`."""
    browser.get(url)
    WebDriverWait(browser, timeout).until(lambda b: state(b)["state"] in until)
    return state(browser)


def state(browser):
    return browser.execute_script("return {...document.getElementById('watch').dataset}")


def rows(browser, table):
    return browser.execute_script(
        """return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)].map(r => ({
             ...r.dataset, cells: [...r.cells].map(c => c.textContent) }))""",
        table,
    )


def text(browser, element_id):
    return browser.find_element(By.ID, element_id).text


def test_the_page_watches_a_moving_job_to_its_end_as_the_api_paces_it(run, browser):
    started = time.monotonic()
    seen = watch(browser, run.page_url)
    elapsed = time.monotonic() - started
    assert seen["state"] == "done", text(browser, "note")
    assert run.page_url.endswith("job=job-moving")

    history = [r["status"] for r in rows(browser, "history")]
    assert history == ["SUBMITTED", "IN_PROGRESS", "COMPLETED"]
    assert text(browser, "job-status") == "COMPLETED"

    requests = rows(browser, "requests")
    statuses = [int(r["status"]) for r in requests]
    # The page could read the exposed headers of every answer: an ETag on each, a Retry-After on
    # each but the terminal one. And it sent If-None-Match: the function answered 304 at least once.
    assert int(seen["polls"]) == len(requests) >= 4
    assert int(seen["etags"]) == len(requests)
    assert int(seen["retryAfters"]) == len(requests) - 1
    assert int(seen["notModified"]) == statuses.count(304) >= 1
    assert all(r["cells"][3].startswith('"') for r in requests), requests
    assert statuses[-1] == 200 and set(statuses) <= {200, 304}

    # Paced by Retry-After: each request came no sooner than the previous answer asked.
    for before, after in zip(requests, requests[1:]):
        retry_after = int(before["cells"][4])
        assert int(before["waitMs"]) == retry_after * 1000 >= 2000
        assert float(after["at"]) - float(before["at"]) >= retry_after * 1000 - 5, requests

    # The function saw the same requests, and the browser's preflight: If-None-Match is not a
    # simple header. (The log names no job for an OPTIONS; this page made all of them.)
    logged = run.wait_for_requests("job-moving", len(requests))
    assert [r["status"] for r in logged] == statuses
    preflights = run.requests(None, "OPTIONS")
    assert len(preflights) >= 1 and all(r["status"] == 204 for r in preflights), preflights
    print(f"\nwatched job-moving to its end in {elapsed:.1f} s: {statuses}")

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    # The whole page in the window: its height plus what the window keeps for itself.
    height = browser.execute_script(
        "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight"
    )
    browser.set_window_size(1100, height)
    browser.save_screenshot(str(SCREENSHOT))


def test_a_problem_answer_is_shown_with_its_request_id(run, browser):
    seen = watch(browser, run.page("job-missing"))
    assert seen["state"] == "problem", text(browser, "note")
    assert text(browser, "problem-title") == "Export job not found"
    assert text(browser, "problem-status") == "404"
    assert text(browser, "problem-detail")
    assert text(browser, "problem-type") == "urn:problem-type:export-job-status:job-not-found"
    logged = run.wait_for_requests("job-missing", 1)
    assert [r["status"] for r in logged] == [404]
    assert text(browser, "problem-request-id") == logged[0]["request_id"]
    assert not browser.find_element(By.ID, "job").is_displayed()


def test_a_throttled_job_is_asked_again_after_retry_after(run, browser):
    seen = watch(browser, run.page("job-throttled"), until=("retrying",))
    assert seen["state"] == "retrying", text(browser, "note")
    WebDriverWait(browser, 15).until(lambda b: int(state(b)["polls"]) >= 2)
    requests = rows(browser, "requests")[:2]
    shown = text(browser, "problem-title"), text(browser, "problem-status")
    browser.get("about:blank")  # ends the page's loop

    assert [int(r["status"]) for r in requests] == [429, 429]
    assert shown == ("Too many requests", "429")
    retry_after = int(requests[0]["cells"][4])
    assert retry_after >= 1
    assert float(requests[1]["at"]) - float(requests[0]["at"]) >= retry_after * 1000 - 5, requests


def test_a_page_from_an_origin_not_allowed_is_refused_by_the_browser(run, browser):
    # The same page from the same server, under another origin: http://127.0.0.1:PORT is not
    # http://localhost:PORT, and only the latter is in ALLOWED_ORIGINS.
    port = run.page_origin.rsplit(":", 1)[1]
    other = f"http://127.0.0.1:{port}"
    assert other != run.page_origin
    before = len(run.requests("job-completed"))
    seen = watch(browser, run.page("job-completed", origin=other))

    # The function answered (200, without Access-Control-Allow-Origin for that origin), and the
    # browser kept the answer from the page: fetch rejected with a TypeError, no status at all.
    assert seen["state"] == "failed", text(browser, "note")
    assert seen["error"] == "TypeError"
    assert seen["polls"] == "0"
    logged = run.wait_for_requests("job-completed", before + 1)
    assert [r["status"] for r in logged[before:]] == [200]
    console = [e["message"] for e in browser.get_log("browser")]
    assert any("blocked by CORS policy" in m and other in m for m in console), console
    assert not browser.find_element(By.ID, "job").is_displayed()
    assert not browser.find_element(By.ID, "problem").is_displayed()
