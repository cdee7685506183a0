"""The analysts' page and API: an entry shows the person masked and no line; a verdict is refused when incomplete;
the page escapes what it shows and offers no raise on a T1."""
from __future__ import annotations

import pytest

from dispatch.escalation import Context
from dispatch.review import Held
from ops.review import VerdictError, review_entry, review_page, verdict
from schemas.internal import Decision, DecisionReason
from scorers.features import FEATURES

T = 1_764_547_200_000


def held(tier: str = "T3", wid: str = "d-1") -> Held:
    decision = Decision(decision_id=wid, person="S1", subject_id="S1", tier=tier, rose=True,  # type: ignore[arg-type]
                        fraud_type="fake_investment", type_probability=0.6, score=0.2,
                        reasons=[DecisionReason(code="LONG_CALL", detail="<b>通话 45 分钟</b>")], evidence=["c1"],
                        ts=T, episode_ts=T, model_version="m", policy_version="p",
                        features=[0.0] * (len(FEATURES) - 1) + [2.5])
    who = {"subject_id": "S1", "phone": "+8613800000001", "grid_id": "G1", "station_id": "P1", "name_masked": "张*"}
    return Held(Context(decision=decision, route="t3", who=who), "rule", T + 30 * 60_000, 0)


def test_an_entry_is_masked_with_its_non_zero_features_and_time_left() -> None:
    e = review_entry(held(), T + 10 * 60_000, lang="zh")
    assert (e["name"], e["grid"], e["station"], e["minutes_left"]) == ("张*", "G1", "P1", 20)
    assert e["features"] == {FEATURES[-1]: 2.5} and e["fraud_type_words"] == "虚假投资理财"
    assert "13800000001" not in str(e)


@pytest.mark.parametrize("form, refused", [
    ({"action": "confirm"}, False),
    ({"action": "dismiss", "reason": " 家属确认 "}, False),
    ({"action": "raise", "tier": "T1"}, False),
    ({"action": "dismiss", "reason": "  "}, True),  # the reason is the false alarm's label
    ({"action": "raise"}, True),
    ({"action": "raise", "tier": "T3"}, True),
    ({"action": "delete"}, True),
    ({"action": "dismiss", "reason": "x" * 2000}, True),
])
def test_a_verdict_is_refused_when_incomplete(form: dict, refused: bool) -> None:
    if refused:
        with pytest.raises(VerdictError):
            verdict("d-1", form, "analyst-1", T)
    else:
        a = verdict("d-1", form, "analyst-1", T)
        assert (a.decision_id, a.analyst, a.ts, a.action) == ("d-1", "analyst-1", T, form["action"])
        assert a.reason == form.get("reason", "").strip() and a.tier == (form.get("tier") if a.action == "raise"
                                                                          else None)


def test_the_page_escapes_what_it_shows_and_offers_no_raise_on_a_t1() -> None:
    page = review_page([review_entry(held("T3", 'd-"x<'), T), review_entry(held("T1", "d-2"), T)], T, lang="zh")
    assert "<b>通话" not in page and "&lt;b&gt;通话" in page
    assert 'data-id="d-&quot;x&lt;"' in page and "/console/review/d-%22x%3C" in page
    assert page.count('class="raise"') == 1 and page.count('class="confirm"') == 2
    assert "预警 · 快速研判" in page and "13800000001" not in page
    assert 'id="empty"' in review_page([], T, lang="en") and "quick assessment" in review_page([], T, lang="en")
