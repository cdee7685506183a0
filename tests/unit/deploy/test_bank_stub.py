"""The test bank's stated rule: a complete request held in full, one without its legal basis refused, none without
an id."""
from __future__ import annotations

from deploy.bank_stub_service import answer
from schemas.records import PaymentInterception

T = 1_764_547_200_000
FULL = PaymentInterception(transfer_id="TR", payer_account="A", payee_account="B", amount_fen=500, reason="r", ts=T,
                           request_id="sp-1", legal_basis="basis", requesting_unit="CENTER")


def test_a_complete_request_is_held_in_full_after_the_delay() -> None:
    r = answer(FULL, "ICBC", 60_000)
    assert r is not None and (r.reply, r.held_fen, r.ts, r.bank, r.request_id) == ("held", 500, T + 60_000, "ICBC",
                                                                                    "sp-1")


def test_a_request_without_its_basis_is_refused_and_one_without_an_id_unanswered() -> None:
    bare = PaymentInterception(transfer_id="TR", payer_account="A", payee_account="B", amount_fen=500, reason="r",
                               ts=T, request_id="sp-1")
    r = answer(bare, "ICBC", 0)
    assert r is not None and r.reply == "refused" and r.note == "missing legal_basis, requesting_unit"
    assert answer(PaymentInterception(transfer_id="TR", payer_account="A", payee_account="B", amount_fen=5,
                                      reason="r", ts=T), "ICBC", 0) is None
