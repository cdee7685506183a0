"""The live console in a real headless Chromium against a running pipeline: a T1 warning fed into Kafka appears
with its reasons, masked name, grid and station; its visit task in the queue table; its stop-payment among the
interceptions; no phone number or account on the page."""
from __future__ import annotations

import shutil
from typing import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import TransferRef
from streams.kafka_io import produce
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


def test_a_t1_warning_appears_on_the_console(isolated: Settings, worker: WorkerProcess, feed: tuple,  # noqa: F811
                                             browser: webdriver.Chrome) -> None:
    load_registry(isolated)
    browser.get(f"http://127.0.0.1:{isolated.web_port}/console")
    WebDriverWait(browser, 20).until(lambda b: "live" in b.find_element(By.ID, "status").text)
    assert browser.find_element(By.ID, "count-T1").text == "0"

    transfer = TransferRef(transfer_id="TR-9", payer_account="6222000000000001", payee_account="6217000011112222",
                           amount_fen=880_000, ts=T + 2 * HOUR)
    produce(isolated, "yujing.decisions", [decision("w-t1", "T1", T + 2 * HOUR, transfer)])

    row = WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, '#warnings tbody tr[data-tier="T1"]'))[0]
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "T1" and cells[2] == "王*" and cells[3] == "G0000 / ST0", worker.log_tail()
    assert cells[4] == "fake_customer_service" and "contact with phone" in cells[6] and cells[8] == "w-t1"
    link = row.find_element(By.TAG_NAME, "a").get_attribute("href")
    assert link.endswith("/console/explain/w-t1")
    assert browser.find_element(By.ID, "count-T1").text == "1"
    queue = WebDriverWait(browser, 60).until(
        lambda b: [r.text for r in b.find_elements(By.CSS_SELECTOR, "#queues tbody tr") if "G0000" in r.text])
    assert queue[0].split()[:3] == ["visit", "G0000", "1"]
    stop = WebDriverWait(browser, 30).until(
        lambda b: [r.text for r in b.find_elements(By.CSS_SELECTOR, "#interceptions tbody tr") if "stop-payment" in r.text])
    assert "************2222" in stop[0] and "8800.00" in stop[0]
    page = browser.page_source
    assert "+8613800000001" not in page and "6222000000000001" not in page and "6217000011112222" not in page

    # the warning's id links to its audit trail
    browser.get(row_link := f"http://127.0.0.1:{isolated.web_port}/console/explain/w-t1")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "warning w-t1: T1 fake_customer_service" in text and "CASE_ELEMENT_CONTACT" in text, row_link
    assert "+8613800000001" not in text and "6222000000000001" not in text
