"""Quick assessment on the real broker and Redis, with the shipped policy: a held T3 is dispatched only after an
analyst confirms (through `yujing review`), also when the worker was SIGKILLed while it waited; a dismissal sends
nothing and lands a labelled false alarm on `outcomes`; a T2 nobody assessed is dispatched once when the person's
next decision or the decider's progress on their partition passes its deadline (not another person's time), and a
confirm after that sends nothing twice. Analysts assess on the console's review page in
headless Chromium (Chinese, the person masked, one key to confirm) and through its JSON API (bearer token; the
token's holder is the analyst on the audit record; a viewer, another site's form or a dismissal without a reason
is refused)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import msgspec
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deploy.app.stream_reader import partition_of
from deploy.city_stream import progress_record
from deploy.config import Settings
from deploy.workers import WorkerProcess
from dispatch.review import REVIEW_FILE
from schemas.catalogue import tr
from schemas.internal import DECIDER, Decision, DecisionReason
from streams.kafka_io import consume, produce
from tests.integration.scenario import HOUR, MIN, T, load_registry, wait_for
from tests.integration.test_console import browser, console_token, get  # noqa: F401  (browser: a fixture)

LONG_CALL = [DecisionReason(code="LONG_CALL", detail="与陌生号码 **********1111 通话 45 分钟")]  # no case element


def held_decision(decision_id: str, tier: str, ts: int, rose: bool = True) -> tuple[bytes, bytes]:
    d = Decision(decision_id=decision_id, person="S_ALICE", subject_id="S_ALICE", tier=tier, rose=rose,  # type: ignore[arg-type]
                 fraud_type="fake_investment", type_probability=0.6, score=0.2, reasons=LONG_CALL, evidence=["c1"],
                 ts=ts, episode_ts=ts, model_version="m1", policy_version="p1")
    return b"S_ALICE", msgspec.json.encode(d)


def yujing(settings: Settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env={**os.environ, **settings.to_env()},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def warned(settings: Settings, expect: int, linger: float = 3) -> list[str]:
    return [json.loads(m.value)["warning_id"] for m in consume(settings, "warnings", expect, timeout=60, linger=linger)]


def test_held_decisions_wait_for_an_analyst_or_the_clock_and_go_out_once(isolated: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(isolated, review_policy=str(REVIEW_FILE))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        load_registry(settings)
        produce(settings, "yujing.decisions", [held_decision("d-confirm", "T3", T),
                                               held_decision("d-dismiss", "T3", T + HOUR)])
        def both_listed() -> str | None:
            out = yujing(settings, "review", "list")
            return out if "d-confirm" in out and "d-dismiss" in out else None

        listed = wait_for(both_listed, 60, "both held decisions listed")
        assert "d-confirm" in listed and listed.index("d-confirm") < listed.index("d-dismiss")  # by deadline
        assert consume(settings, "warnings", expect=0, timeout=3, linger=2) == []  # nothing before an analyst

        worker.stop(sig=signal.SIGKILL)  # killed while both wait: Redis keeps the queue
        worker = WorkerProcess(settings, tmp_path / "worker-2.log").start()
        yujing(settings, "review", "confirm", "d-confirm", "--analyst", "analyst-1")
        yujing(settings, "review", "dismiss", "d-dismiss", "--analyst", "analyst-1", "--reason", "家属确认为正常投资")
        assert warned(settings, expect=1) == ["d-confirm"], worker.log_tail()
        sms = [json.loads(m.value) for m in consume(settings, "dispatch.sms", expect=1, timeout=30, linger=2)]
        assert [s["warning_id"] for s in sms] == ["d-confirm"]
        labels = [json.loads(m.value) for m in consume(settings, "outcomes", expect=1, timeout=30, linger=2)]
        assert [(o["warning_id"], o["outcome"], o["note"]) for o in labels] == [
            ("d-dismiss", "false_alarm", "analyst-1: 家属确认为正常投资")]

        produce(settings, "yujing.decisions", [held_decision("d-timeout", "T2", T + 2 * HOUR),
                                               held_decision("tick", "T2", T + 2 * HOUR + 31 * MIN, rose=False)])
        assert sorted(warned(settings, expect=2)) == ["d-confirm", "d-timeout"], worker.log_tail()
        yujing(settings, "review", "confirm", "d-timeout", "--analyst", "analyst-2")  # too late: taken by the clock
        assert sorted(warned(settings, expect=2, linger=6)) == ["d-confirm", "d-timeout"]
        tasks = [json.loads(m.value)["warning_id"] for topic in ("dispatch.phone", "dispatch.visit")
                 for m in consume(settings, topic, expect=2, timeout=10, linger=2)]
        assert sorted(tasks) == ["d-timeout", "d-timeout"]  # one call and one visit: once
        assert tr("no decision is waiting for review") in yujing(settings, "review", "list")

        # Her next held decision (past the cooldown), and nothing more of hers: someone else's decision hours later
        # (another person's time) does not release it; the decider's progress on her partition past its deadline does.
        produce(settings, "yujing.decisions", [held_decision("d-progress", "T2", T + 27 * HOUR)])
        someone_else = msgspec.json.encode(msgspec.structs.replace(
            msgspec.json.decode(held_decision("d-bob", "T2", T + 40 * HOUR, rose=False)[1], type=Decision),
            person="S_BOB", subject_id="S_BOB"))
        produce(settings, "yujing.decisions", [(b"S_BOB", someone_else)])
        assert sorted(warned(settings, expect=2, linger=5)) == ["d-confirm", "d-timeout"]
        produce(settings, "yujing.decisions", [progress_record(DECIDER, T + 27 * HOUR + 30 * MIN)],
                partition=partition_of(b"S_ALICE", settings.partitions))
        assert sorted(warned(settings, expect=3)) == ["d-confirm", "d-progress", "d-timeout"], worker.log_tail()
    finally:
        worker.stop()


def post(url: str, body: dict[str, str], token: str = "", origin: str = "") -> tuple[int, dict]:
    """Status and JSON answer of a JSON POST to the review API, with a bearer token and an Origin when given."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
               **({"Origin": origin} if origin else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        body = err.read().decode()
        return err.code, json.loads(body) if body.startswith("{") else {"error": body}  # a refusal may be text


def notice_names(driver: webdriver.Chrome, decision_id: str) -> None:
    """Wait for the page the form's answer leads to, its notice naming the decision."""
    WebDriverWait(driver, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda b: decision_id in b.find_element(By.ID, "notice").text)


def test_analysts_assess_on_the_console_page_and_through_the_api(isolated: Settings, tmp_path: Path,
                                                                 browser: webdriver.Chrome) -> None:  # noqa: F811
    settings = dataclasses.replace(isolated, review_policy=str(REVIEW_FILE))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    base = f"http://127.0.0.1:{settings.web_port}/console"
    try:
        load_registry(settings)
        produce(settings, "yujing.decisions", [held_decision("d-page-confirm", "T3", T),  # within the hour they wait
                                               held_decision("d-page-dismiss", "T3", T + MIN),
                                               held_decision("d-api-raise", "T3", T + 2 * MIN)])
        analyst, viewer = console_token(settings, "analyst", holder="analyst-7"), console_token(settings, "viewer")
        wait_for(lambda: len(json.loads(get(f"{base}/review.json", analyst)[1])["waiting"]) == 3 or None, 60,
                 "three decisions waiting")
        assert get(f"{base}/review.json", viewer)[0] == 403  # a viewer sees the console, not the review queue
        assert get(f"{base}/review.json")[0] == 401

        browser.get(f"{base}/review")  # signed out: the sign-in form, then back to the queue
        browser.find_element(By.ID, "token").send_keys(analyst)
        browser.find_element(By.ID, "sign-in").click()
        WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.ID, "status"))  # signed in: the console
        browser.get(f"{base}/review")
        assert browser.find_element(By.TAG_NAME, "h1").text == "预警 · 快速研判"
        assert [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#queue th")] == [
            "截止时间", "等级", "诈骗类型", "人员", "网格 / 派出所", "预警理由", "风险特征", "研判"]
        rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        assert [r.get_attribute("data-id") for r in rows] == ["d-page-confirm", "d-page-dismiss", "d-api-raise"]
        assert "虚假投资理财" in rows[0].text and "**********1111" in rows[0].text
        assert "13800000001" not in browser.page_source  # the person's line never reaches the page

        rows[0].find_element(By.CSS_SELECTOR, "button.confirm").click()  # one key
        notice_names(browser, "d-page-confirm")
        row = browser.find_element(By.CSS_SELECTOR, '#queue tr[data-id="d-page-dismiss"]')
        row.find_element(By.NAME, "reason").send_keys("本人已知情，正常理财")
        row.find_element(By.CSS_SELECTOR, "button.dismiss").click()
        notice_names(browser, "d-page-dismiss")

        api = f"{base}/review/d-api-raise"
        assert post(api, {"action": "raise", "tier": "T2"}, viewer)[0] == 403
        assert post(api, {"action": "dismiss"}, analyst)[0] == 400  # a dismissal needs its reason
        assert post(api, {"action": "raise", "tier": "T2"}, analyst, origin="http://evil.example")[0] == 403
        assert post(f"{base}/review/d-nobody", {"action": "confirm"}, analyst)[0] == 409
        status, answer = post(api, {"action": "raise", "tier": "T2"}, analyst)
        assert status == 202 and answer["analyst"] == "analyst-7" and answer["tier"] == "T2", answer

        sent = {json.loads(m.value)["warning_id"]: json.loads(m.value)["tier"]
                for m in consume(settings, "warnings", expect=2, timeout=60, linger=3)}
        assert sent == {"d-page-confirm": "T3", "d-api-raise": "T2"}, worker.log_tail()
        labels = [json.loads(m.value) for m in consume(settings, "outcomes", expect=1, timeout=30, linger=2)]
        assert [(o["warning_id"], o["outcome"], o["note"]) for o in labels] == [
            ("d-page-dismiss", "false_alarm", "analyst-7: 本人已知情，正常理财")]
        audit = [json.loads(m.value) for m in consume(settings, "yujing.assessments", expect=3, timeout=30, linger=2)]
        assert sorted((a["decision_id"], a["action"], a["analyst"]) for a in audit) == [  # who, what (and when, why)
            ("d-api-raise", "raise", "analyst-7"), ("d-page-confirm", "confirm", "analyst-7"),
            ("d-page-dismiss", "dismiss", "analyst-7")]
        wait_for(lambda: json.loads(get(f"{base}/review.json", analyst)[1])["waiting"] == [] or None, 30,
                 "the queue emptied")
    finally:
        worker.stop()
