"""Stop-payment requests a bank can act on, and the banks' answers on `interception.replies`: each of held,
released, too late and refused settles its request on the console and in the metrics; a repeated or older answer
changes nothing and is not counted again; a malformed answer, or one dated far ahead, is dead-lettered with its
reason."""
from __future__ import annotations

import json

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import TransferRef
from schemas.records import BankReply, PaymentInterception
from streams.kafka_io import consume, produce
from streams.person_state import episode_warning_id
from tests.integration.scenario import HOUR, MIN, T, load_registry, wait_for
from tests.integration.test_console import console_token, get
from tests.integration.test_dispatch import decision
from tests.integration.test_metrics import scrape, value

KINDS = ("held", "released", "too_late", "refused")


def test_each_bank_reply_settles_its_stop_payment(isolated: Settings, worker: WorkerProcess) -> None:
    load_registry(isolated)
    amounts = {f"TR-{i}": 100_000 * (i + 1) for i in range(len(KINDS))}
    produce(isolated, "yujing.decisions", [
        decision(f"d-{i}", "T1", T + 2 * HOUR + i * MIN,
                 TransferRef(transfer_id=f"TR-{i}", payer_account="6222000000000001", payee_account=f"62170000{i:08d}",
                             amount_fen=amounts[f"TR-{i}"], ts=T + 2 * HOUR + i * MIN, payee_bank="ICBC",
                             payer_bank="BOC", case_refs=["case-1"]), rose=i == 0)
        for i in range(len(KINDS))])
    requests = {r.transfer_id: r for r in (msgspec.json.decode(m.value, type=PaymentInterception) for m in
                                           consume(isolated, "interception.payment", expect=4, timeout=60, linger=2))}
    assert sorted(requests) == sorted(amounts), worker.log_tail()
    for i, (transfer_id, r) in enumerate(sorted(requests.items())):
        episode = T + 2 * HOUR + i * MIN
        assert r.warning_id == ("d-0" if i == 0 else episode_warning_id("S_ALICE", episode, "T1"))
        assert (r.payee_bank, r.payer_bank, r.station_id, r.case_refs) == ("ICBC", "BOC", "ST0", ["case-1"])
        assert r.requesting_unit and "反电信网络诈骗法" in (r.legal_basis or "")
        assert r.expires_ts == r.ts + 48 * HOUR and r.request_id and r.request_id.startswith("sp-")
    assert len({r.request_id for r in requests.values()}) == 4

    def reply(transfer_id: str, kind: str, ts: int) -> tuple[bytes, bytes]:
        r = requests[transfer_id]
        doc = BankReply(request_id=r.request_id or "", transfer_id=transfer_id, bank="ICBC", reply=kind,  # type: ignore[arg-type]
                        ts=ts, held_fen=r.amount_fen if kind == "held" else None, note=f"{kind} by the bank's desk")
        return doc.request_id.encode(), msgspec.json.encode(doc)

    answered = T + 3 * HOUR
    produce(isolated, "interception.replies",
            [reply("TR-1", "held", answered - HOUR)]  # held first, released later: released shown, nothing held
            + [reply(f"TR-{i}", kind, answered) for i, kind in enumerate(KINDS)]
            + [reply("TR-0", "held", answered),  # a repeat: counted once
               reply("TR-0", "released", answered - HOUR),  # older than the hold: it changes nothing, not counted
               (b"bad", json.dumps({"request_id": "x", "transfer_id": "TR-0", "bank": "ICBC", "reply": "maybe",
                                    "ts": answered}).encode()),
               reply("TR-2", "held", 4_000_000_000_000)])  # decades ahead: dead-lettered, or it would win forever

    token = console_token(isolated, "viewer")

    def settled() -> dict[str, dict] | None:
        status, body = get(f"http://127.0.0.1:{isolated.web_port}/console/state.json", token)
        shown = json.loads(body)["interceptions"] if status == 200 else []
        rows = {i["request_id"]: i for i in shown if i.get("request_id")}
        return rows if sum(1 for row in rows.values() if row.get("reply")) == 4 else None

    rows = wait_for(settled, 60, "the four answers on the console")
    by_transfer = {transfer_id: rows[r.request_id] for transfer_id, r in requests.items()}
    assert {t: row["reply"] for t, row in by_transfer.items()} == {f"TR-{i}": k for i, k in enumerate(KINDS)}
    assert by_transfer["TR-0"]["held_fen"] == amounts["TR-0"] and by_transfer["TR-0"]["reply_ts"] == answered
    assert "held_fen" not in by_transfer["TR-1"]
    samples = wait_for(lambda: (s := scrape(isolated)) and value(s, "yujing_stop_payment_replies_total", reply="held")
                       and s, 30, "the replies counted")
    assert {k: value(samples, "yujing_stop_payment_replies_total", reply=k) for k in KINDS} == {
        "held": 2, "released": 1, "too_late": 1, "refused": 1}
    assert value(samples, "yujing_stop_payment_held_fen_total") == amounts["TR-0"] + amounts["TR-1"]
    dead = [json.loads(m.value) for m in consume(isolated, "deadletter", expect=2, timeout=30, linger=1)]
    assert sorted((d["topic"], d.get("field")) for d in dead) == [
        ("interception.replies", "reply"), ("interception.replies", "ts")], dead
