"""The label page in a real headless Chromium (Selenium through Debian's chromium-driver), served by the real
`clippings label` process: answers by button and by key, undo, a killed and restarted server, the answers file
afterwards; captions carrying markup shown as text; requests without the token refused.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from clippings.label.answers import ANSWERS, read_answers
from clippings.label.selection import PairPlan
from clippings.link.pipeline import read_links
from clippings.link.slink import Mst
from clippings.storage import write_dataset
from tests.test_label import archive_table, build_labelled_links, write_links

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="Chromium or chromium-driver missing: run scripts/install-test-deps.sh")

SCRIPT = '<script>window.pwned = "script"</script> & "quotes"'
ONERROR = '<img src="x" onerror="window.pwned = \'onerror\'">'


def start_server(links: str, archive: str, out: str, *extra: str, timeout: float = 60.0,
                 seen: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """`clippings label` in its own process on a free port; returns it and the URL (with token) it prints.
    `seen` receives the console lines up to the URL's."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "clippings.cli", "label", "--links", links, "--archive", archive,
                             "--out", out, "--port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    seen = [] if seen is None else seen
    lines: queue.Queue[str] = queue.Queue()
    # a thread reads the console: select() on a buffered pipe misses lines already read into its buffer
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if "open http://" in line:
            return proc, line.split("open ", 1)[1].split(" ", 1)[0]
    proc.kill()
    raise AssertionError("the label server did not start:\n" + "".join(seen))


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def labelled_links(tmp_path_factory):
    return build_labelled_links(tmp_path_factory.mktemp("label"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def body(driver, name: str) -> str | None:
    return driver.find_element("tag name", "body").get_attribute(name)


def wait_for(driver, answers: int, timeout: float = 15.0) -> str:
    """Wait until the page is ready with `answers` answered; returns the pair on show ('a\\nb')."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: body(d, "data-state") in ("ready", "done") and body(d, "data-answers") == str(answers))
    return body(driver, "data-pair")


def press(driver, key: str) -> None:
    driver.find_element("tag name", "body").send_keys(key)


def test_answer_undo_kill_restart_and_the_answers_file(labelled_links, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    links, archive, out = labelled_links["links"], labelled_links["archive"], str(tmp_path / "answers")
    proc, url = start_server(links, archive, out)
    try:
        browser.get(url)
        shown = [wait_for(browser, 0)]
        browser.find_element("id", "same").click()
        shown.append(wait_for(browser, 1))
        press(browser, "n")
        shown.append(wait_for(browser, 2))
        press(browser, "u")
        wait_for(browser, 3)
        browser.find_element("id", "undo").click()
        assert wait_for(browser, 2) == shown[2]  # the undone pair comes back
        press(browser, Keys.BACK_SPACE)
        assert wait_for(browser, 1) == shown[1]
        press(browser, "n")
        shown[2:] = [wait_for(browser, 2)]
        assert "estimated t" in browser.find_element("id", "progress").text or "t from the links" in \
            browser.find_element("id", "progress").text
    finally:
        stop(proc, signal.SIGKILL)  # a crash, not a clean stop
    proc, url = start_server(links, archive, out)
    try:
        browser.get(url)
        assert wait_for(browser, 2) == shown[2]  # the same next pair after the restart
        press(browser, "y")
        shown.append(wait_for(browser, 3))
        press(browser, "n")
        shown.append(wait_for(browser, 4))
        browser.find_element("id", "unsure").click()
        wait_for(browser, 5)
    finally:
        stop(proc)
    answers = read_answers(out)
    assert [f"{a.a}\n{a.b}" for a in answers] == shown
    assert [a.answer for a in answers] == ["same", "different", "same", "different", "unsure"]
    assert len({a.key for a in answers}) == 5  # nothing asked twice
    records = [json.loads(line) for line in (tmp_path / "answers" / ANSWERS).read_text().splitlines()]
    assert [r["kind"] for r in records] == ["answer"] * 3 + ["undo"] * 2 + ["answer"] * 4
    # each pair is the one the ask order gives after the answers before it: the server followed the plan
    ids, mst, info = read_links(links)
    plan = PairPlan(mst, ids, info["threshold"], seed=0)
    for i, a in enumerate(answers):
        pair = plan.next(answers[:i])
        assert (ids[pair.a], ids[pair.b], pair.reason) == (a.a, a.b, a.reason)


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    root = tmp_path_factory.mktemp("evil")
    ids = ["<b>id</b>", "x\"'&<"]
    write_dataset(archive_table(ids, ids, [SCRIPT, ONERROR]), str(root / "archive"))
    write_links(root / "links", ids, Mst(2, np.array([0]), np.array([1]), np.array([0.2])), 0.3)
    proc, url = start_server(str(root / "links"), str(root / "archive"), str(root / "out"))
    yield url
    stop(proc)


def _status(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_markup_in_captions_and_ids_is_shown_as_text(evil, browser):
    browser.get(evil)
    wait_for(browser, 0)
    captions = [e.text for e in browser.find_elements("css selector", ".caption")]
    assert captions == [SCRIPT, ONERROR]
    assert browser.execute_script("return window.pwned === undefined")
    assert not browser.find_elements("css selector", ".caption *, .meta *")
    assert "<b>id</b>" in browser.find_element("id", "left").text
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    # both images decoded (re-encoded JPEGs served under the token)
    assert browser.execute_script("return [].every.call(document.images, i => i.complete && i.naturalWidth > 0)")


def test_every_request_needs_the_token(evil):
    parts = urllib.parse.urlsplit(evil)
    base, token = f"{parts.scheme}://{parts.netloc}", urllib.parse.parse_qs(parts.query)["token"][0]
    for path in ("/", "/api/state", "/static/label.js", "/image?id=x", "/api/undo"):
        assert _status(base + path) == 403, path
        assert _status(base + path + ("&" if "?" in path else "?") + "token=" + token[:-1] + "A") == 403, path
    assert _status(f"{base}/?token={token}") == 200
    assert _status(f"{base}/api/state?token={token}") == 200
    assert _status(f"{base}/image?token={token}&id=" + urllib.parse.quote('x"\'&<')) == 200
    answer = json.dumps({"a": "x", "b": "y", "answer": "same"}).encode()
    assert _status(f"{base}/api/answer?token={token}", answer) == 409  # not the pair on show
    assert _status(f"{base}/api/answer", answer) == 403


def test_another_host_is_said_out_loud(labelled_links, tmp_path):
    """A --host other than 127.0.0.1 gets a warning line before the URL (127.0.0.2: still this machine)."""
    seen: list[str] = []
    proc, url = start_server(labelled_links["links"], labelled_links["archive"], str(tmp_path / "a"), "--host",
                             "127.0.0.2", seen=seen)
    stop(proc)
    assert url.startswith("http://127.0.0.2:")
    assert any("WARNING: listening on 127.0.0.2, not only on this machine" in line for line in seen)
