"""The audit trail's rendering: reasons, evidence found and missing, non-zero features, dispatches, stop-payments and
the banks' answers; in English here (the words checked), in Chinese by default."""
from __future__ import annotations

import pytest

from ops.explain import Trail, as_dict, render
from schemas.internal import Decision, DecisionReason, TransferRef
from scorers.features import FEATURES


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUJING_LANG", "en")


def test_render_and_dict() -> None:
    features = [0.0] * len(FEATURES)
    features[0] = 1.0
    d = Decision(decision_id="w1", person="S1", subject_id="S1", tier="T1", rose=True, fraud_type="romance",
                 type_probability=0.8, score=0.93, reasons=[DecisionReason(code="TRANSFER", detail="first transfer")],
                 evidence=["e1", "e2"], ts=1_764_547_200_000, episode_ts=1_764_547_200_000, model_version="m",
                 policy_version="p", features=features,
                 transfer=TransferRef(transfer_id="TR", payer_account="a", payee_account="b", amount_fen=12_345, ts=0))
    trail = Trail("w1", d, evidence={"e1": {"topic": "signals.payment", "ts": 1_764_547_200_000}},
                  records={"outcomes": [{"warning_id": "w1", "outcome": "dissuaded", "task_id": "t9", "ts": 1}]},
                  stop_payments=[{"transfer_id": "TR", "amount_fen": 12_345, "ts": 1, "request_id": "sp-1"}],
                  replies=[{"request_id": "sp-1", "bank": "ICBC", "reply": "too_late", "ts": 2}])
    text = render(trail)
    assert "T1 romance scam" in text and "TRANSFER: first transfer" in text
    assert "e1: signals.payment at 2025-12-01 08:00:00" in text and "e2: (an indicator hit" in text
    assert FEATURES[0] in text and FEATURES[1] not in text  # only the features that were not zero
    assert "dissuaded t9" in text and "stop-payment of transfer TR, ¥123.45 (request sp-1)" in text
    assert "ICBC answered too late (request sp-1)" in text
    data = as_dict(trail)
    assert data["missing_evidence"] == ["e2"] and data["features"][FEATURES[0]] == 1.0
    assert render(Trail("nope")) == "no decision nope on yujing.decisions"


def test_an_unregistered_person_is_shown_masked() -> None:
    d = Decision(decision_id="w2", person="+8613800000009", subject_id=None, tier="T3", rose=True,
                 fraud_type="romance", type_probability=0.5, score=0.4, reasons=[], evidence=[], ts=0, episode_ts=0,
                 model_version="m", policy_version="p")
    text = render(Trail("w2", d))
    assert "person unregistered **********0009" in text and "13800000009" not in text


def test_chinese_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUJING_LANG")
    d = Decision(decision_id="w3", person="S1", subject_id="S1", tier="T2", rose=True, fraud_type="fake_loan",
                 type_probability=0.5, score=0.4, reasons=[], evidence=[], ts=0, episode_ts=0, model_version="m",
                 policy_version="p")
    assert render(Trail("w3", d)).startswith("预警 w3：T2 虚假网络贷款（p=0.50），评分 0.400")
