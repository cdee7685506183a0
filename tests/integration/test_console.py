"""The live console in a real headless Chromium against a running pipeline, in Chinese (the operators' language by
default): signed in with an analyst's token, a T1 warning fed into Kafka appears with its reasons, masked name, grid
and station; its visit task in the queue table; its stop-payment among the interceptions, settled by the bank's
answer; no phone number or account on the page. Without a valid token, with too
weak a role, under a strange Host the pages refuse, and guessing tokens is throttled; faust's table pages are gone."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Iterator

import msgspec
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import TransferRef
from schemas.records import BankReply, PaymentInterception
from streams.kafka_io import consume, produce
from tests.integration.scenario import HOUR, T, load_registry
from tests.integration.test_dispatch import decision
from tests.integration.test_task_feed import feed  # noqa: F401  (the task feed fixture: fills the queues)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("chromium and chromedriver are missing: run the tests through scripts/test.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    yield b
    b.quit()


def console_token(settings: Settings, role: str, hours: float = 1.0, holder: str = "ops-1") -> str:
    """A token from `yujing console-token`, as an operator would issue it."""
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "console-token", "--holder", holder, "--role", role,
                          "--hours", str(hours)], env={**os.environ, **settings.to_env()}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def get(url: str, token: str = "", host: str = "") -> tuple[int, str]:
    """Status and body of a GET, with a bearer token and a Host header when given."""
    request = urllib.request.Request(url, headers={**({"Authorization": f"Bearer {token}"} if token else {}),
                                                   **({"Host": host} if host else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_t1_warning_appears_on_the_console(isolated: Settings, worker: WorkerProcess, feed: tuple,  # noqa: F811
                                             browser: webdriver.Chrome) -> None:
    load_registry(isolated)
    browser.get(f"http://127.0.0.1:{isolated.web_port}/console")
    browser.find_element(By.ID, "token").send_keys(console_token(isolated, "analyst"))
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "status").get_attribute("data-state") == "live")
    assert browser.find_element(By.ID, "count-T1").text == "0"
    assert browser.find_element(By.TAG_NAME, "h1").text == "预警 · 反诈中心值班台"
    assert [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#warnings th")] == [
        "等级", "时间", "姓名", "网格 / 派出所", "诈骗类型", "评分", "预警理由", "处置方式", "预警编号"]
    assert "实时 · 更新于" in browser.find_element(By.ID, "status").text

    transfer = TransferRef(transfer_id="TR-9", payer_account="6222000000000001", payee_account="6217000011112222",
                           amount_fen=880_000, ts=T + 2 * HOUR, payee_bank="ICBC")
    produce(isolated, "yujing.decisions", [decision("w-t1", "T1", T + 2 * HOUR, transfer)])

    row = WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, '#warnings tbody tr[data-tier="T1"]'))[0]
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "T1" and cells[2] == "王*" and cells[3] == "G0000 / ST0", worker.log_tail()
    assert cells[4] == "冒充电商物流客服" and "contact with phone" in cells[6] and cells[8] == "w-t1"
    assert cells[7] == "电话、上门走访"
    link = row.find_element(By.TAG_NAME, "a").get_attribute("href")
    assert link.endswith("/console/explain/w-t1")
    assert browser.find_element(By.ID, "count-T1").text == "1"
    queue = WebDriverWait(browser, 60).until(
        lambda b: [r.text for r in b.find_elements(By.CSS_SELECTOR, "#queues tbody tr") if "G0000" in r.text])
    assert queue[0].split()[:3] == ["上门走访", "G0000", "1"]
    stops = '#interceptions tbody tr[data-kind="stop-payment"]'
    stop = WebDriverWait(browser, 30).until(lambda b: [r.text for r in b.find_elements(By.CSS_SELECTOR, stops)])
    assert "紧急止付" in stop[0] and "************2222" in stop[0] and "8800.00" in stop[0] and "等待银行回复" in stop[0]
    request = msgspec.json.decode(consume(isolated, "interception.payment", expect=1, timeout=30)[0].value,
                                  type=PaymentInterception)
    assert request.request_id and request.payee_bank == "ICBC"
    held = BankReply(request_id=request.request_id, transfer_id="TR-9", bank="ICBC", reply="held", ts=T + 3 * HOUR,
                     held_fen=880_000)
    produce(isolated, "interception.replies", [(held.request_id.encode(), msgspec.json.encode(held))])
    settled = WebDriverWait(browser, 30).until(
        lambda b: [r.text for r in b.find_elements(By.CSS_SELECTOR, stops) if "已止付" in r.text])
    assert "已止付 · ICBC ¥8800.00" in settled[0]
    page = browser.page_source
    assert "+8613800000001" not in page and "6222000000000001" not in page and "6217000011112222" not in page

    # the warning's id links to its audit trail
    browser.get(row_link := f"http://127.0.0.1:{isolated.web_port}/console/explain/w-t1")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "预警 w-t1：T1 冒充电商物流客服" in text and "CASE_ELEMENT_CONTACT" in text, row_link
    assert "ICBC 回复：已止付" in text  # the bank's answer is part of the trail
    assert "+8613800000001" not in text and "6222000000000001" not in text
    assert "console sign-in: ops-1 (analyst)" in worker.log_path.read_text()


def test_the_console_refuses_who_it_should_and_faust_serves_no_table(isolated: Settings,
                                                                     worker: WorkerProcess) -> None:
    base = f"http://127.0.0.1:{isolated.web_port}"
    viewer, analyst = console_token(isolated, "viewer"), console_token(isolated, "analyst", holder="analyst-1")
    assert get(f"{base}/console/state.json")[0] == 401
    status, body = get(f"{base}/console")
    assert status == 401 and 'id="token"' in body  # the sign-in form, nothing of the console
    assert get(f"{base}/console/state.json", viewer)[0] == 200
    assert get(f"{base}/console/explain/w-none", viewer)[0] == 403  # the audit trail is an analyst's
    assert get(f"{base}/console/explain/w-none", analyst)[0] == 404  # let in; there is no such warning
    assert "explain 'w-none' read by analyst-1" in worker.log_path.read_text()  # the audit names who read what
    assert get(f"{base}/console/state.json", analyst, host="rebound.example:6066")[0] == 400
    assert get(f"{base}/console/state.json", analyst, host=f"localhost:{isolated.web_port}")[0] == 200
    for path in ("/table/", "/table/identity/", "/router/"):  # faust's own pages: identities and states
        assert get(f"{base}{path}")[0] == 404, path
    assert get(f"{base}/metrics")[0] == 200  # nothing personal: Prometheus scrapes it without a token

    brief = console_token(isolated, "analyst", hours=1 / 3600, holder="brief")
    assert get(f"{base}/console/state.json", brief)[0] == 200
    time.sleep(1.2)
    assert get(f"{base}/console/state.json", brief)[0] == 401  # expired
    revoked = subprocess.run([sys.executable, "-m", "deploy.cli", "console-token", "--holder", "ops-1", "--revoke"],
                             env={**os.environ, **isolated.to_env()}, check=True, capture_output=True, text=True)
    assert "revoked 1" in revoked.stdout and get(f"{base}/console/state.json", viewer)[0] == 401

    refused = [get(f"{base}/console/state.json", f"wrong-{i}")[0] for i in range(25)]
    assert refused[:18] == [401] * 18 and refused[-1] == 429  # guessing is throttled (20 a minute)
    assert get(f"{base}/console/state.json", analyst)[0] == 200  # a good token is never throttled
