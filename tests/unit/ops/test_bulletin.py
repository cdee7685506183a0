"""The bulletin's figures: one local day, de-duplicated by ids, success by station, Markdown and HTML written."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from ops.bulletin import figures, parse_records, write
from schemas.records import Outcome, encode

DAY = 1_764_547_200_000  # 2025-12-01 08:00 local


def test_figures_count_the_day_once_each(tmp_path: Path) -> None:
    records = {
        "warnings": [{"warning_id": "w1", "tier": "T1", "ts": DAY}, {"warning_id": "w1", "tier": "T1", "ts": DAY},
                     {"warning_id": "w2", "tier": "T3", "ts": DAY + 3_600_000},
                     {"warning_id": "w0", "tier": "T3", "ts": DAY - 9 * 3_600_000}],  # the day before (23:00)
        "dispatch.phone": [{"task_id": "p1", "station_id": "ST1", "ts": DAY}],
        "dispatch.visit": [{"task_id": "v1", "station_id": "ST1", "ts": DAY}, {"task_id": "v2", "station_id": "ST2", "ts": DAY}],
        "interception.payment": [{"transfer_id": "TR", "amount_fen": 500_000, "ts": DAY}] * 2,
        "interception.replies": [{"request_id": "sp-1", "transfer_id": "TR", "reply": "held", "held_fen": 500_000,
                                  "ts": DAY + 60_000},
                                 {"request_id": "sp-1", "transfer_id": "TR", "reply": "held", "held_fen": 500_000,
                                  "ts": DAY + 60_000},  # sent twice: counted once
                                 {"request_id": "sp-2", "transfer_id": "TR2", "reply": "too_late", "ts": DAY}],
        "interception.number": [{"number": "+8617000000001", "action": "block", "ts": DAY},
                                {"number": "+8617000000002", "action": "flag", "ts": DAY}],
        "outcomes": [{"warning_id": "w1", "task_id": "v1", "outcome": "dissuaded", "amount_saved_fen": 500_000, "ts": DAY},
                     {"warning_id": "w1", "task_id": "p1", "outcome": "call_answered", "ts": DAY},
                     {"warning_id": "w2", "task_id": "v2", "outcome": "false_alarm", "ts": DAY},
                     {"warning_id": "w2", "message_id": "m", "outcome": "sms_delivered", "ts": DAY}],
    }
    f = figures(records, date(2025, 12, 1), 1)
    assert (f["warnings"], f["warnings_by_tier"]) == (2, {"T1": 1, "T3": 1})
    assert (f["calls"], f["visits"], f["sms_sent"], f["numbers_blocked"]) == (1, 2, 1, 1)
    assert (f["stop_payments"], f["stop_payment_fen"], f["saved_fen"], f["dissuaded"]) == (1, 500_000, 500_000, 1)
    assert (f["stops_held"], f["stops_too_late"], f["stops_refused"], f["held_fen"]) == (1, 1, 0, 500_000)
    assert f["stations"] == {"ST1": {"closed": 2, "dissuaded": 1, "success": 0.5},
                             "ST2": {"closed": 1, "dissuaded": 0, "success": 0.0}}
    md, page = write(f, tmp_path)
    assert "| 处置预警指令 | 2 |" in md.read_text() and "| ST1 | 2 | 1 | 50% |" in md.read_text()
    assert "|   银行回复：已止付 / 资金已转出 / 拒绝受理 | 1 / 1 / 0 (¥5,000.00) |" in md.read_text()
    assert "data:image/png;base64," in page.read_text()


def test_malformed_records_are_left_out_and_counted_not_the_end_of_the_bulletin(tmp_path: Path) -> None:
    good = encode(Outcome(warning_id="w1", channel="visit", outcome="dissuaded", ts=DAY, task_id="v1"))
    records, left_out = parse_records({"outcomes": [good, None, b"not json", b'{"warning_id": 5}', b"[]"],
                                       "warnings": [b'{"warning_id": "w9", "tier": "T1"}']})
    assert left_out == 5 and [r["task_id"] for r in records["outcomes"]] == ["v1"] and records["warnings"] == []
    f = figures(records, date(2025, 12, 1), 1) | {"left_out": left_out}
    md, _ = write(f, tmp_path)
    assert f["dissuaded"] == 1 and "| 格式错误未计入的记录（见各主题） | 5 |" in md.read_text()
