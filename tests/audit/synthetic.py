"""A lineage built in memory: the facts `rebuild_lineage` gathers for an honest job, no chain.

For the fast tests of the audit's verdicts and renderings (`test_*_mutants.py`): the checks
(`ledger.audit.checks.evaluate`), the privacy accounting and the report's JSON, table, PROV and
HTML are pure functions of a `Lineage`, so each case here is that lineage with one fact changed,
as a lying chain, store or coordinator would change it. The attestations are real: hospital keys
sign them (`sign_attestation`) and the manifests are built by `RoundManifest.from_attestations`,
so roots, weights and signers are the values the real audit would find.

The honest job: job 7 of the lab, purpose ai-training, three datasets, two rounds each with all
three; the third hospital trains with DP-SGD under a grant with an epsilon budget of 8.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from rich.console import Console

from ledger.audit.checks import evaluate
from ledger.audit.lineage import AuditTarget, Lineage, ParticipantFacts, RoundFacts
from ledger.audit.report import AuditReport
from ledger.chain.types import AuthorizationStatus, DatasetState, GrantTerms, JobRecord
from ledger.index import (
    DeedTransfer,
    GrantEvent,
    GrantStateAt,
    GrantStatus,
    IndexedDataset,
    IndexedJob,
    IndexedRound,
)
from ledger.privacy import DPRound, cumulative_epsilon, epsilon_e6
from ledger.provenance import (
    Attestation,
    ParticipantPrivacy,
    PrivacyClaim,
    RoundManifest,
    SignedAttestation,
    model_digest,
    sign_attestation,
)
from ledger.purposes import purpose_id
from ledger.store import cid_of

CHAIN_ID = 31337
LEDGER = "0x9fE46736679d2D9a65F0992F6F006FAbF1A05E5E"
RPC = "http://127.0.0.1:8545"
LAB = Account.from_key(keccak(text="synthetic lab")).address
AI = purpose_id("ai-training")
JOB = 7
INITIAL = model_digest(b"initial model")
SPEC = keccak(text="job spec")
EPSILON, DELTA = 8.0, 1e-5
DP = DPRound(noise_multiplier_e6=1_100_000, max_grad_norm_e6=1_000_000, sample_rate_e9=50_000_000, steps=40)
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
ZERO = "0x" + "00" * 20


def _hospital(i: int) -> LocalAccount:
    account: LocalAccount = Account.from_key(keccak(text=f"synthetic hospital {i}"))
    return account


HOSPITALS = [_hospital(i) for i in range(3)]
# Ascending ids (the manifest's order), distinct leading hex digits so messages tell them apart.
DATASETS = [(0x11 + 0x11 * i) << 248 | i for i in range(3)]
DP_DATASET = DATASETS[2]


def tx(label: str) -> str:
    return "0x" + keccak(text=label).hex()


def model_bytes(round_number: int) -> bytes:
    return f"model of round {round_number}".encode()


def update_bytes(round_number: int, i: int) -> bytes:
    return f"update of dataset {i} in round {round_number}".encode()


def examples(i: int) -> int:
    return 100 + 50 * i


def job() -> IndexedJob:
    return IndexedJob(
        job_id=JOB,
        coordinator=LAB,
        purpose=AI,
        datasets=tuple(DATASETS),
        initial_model_digest=INITIAL,
        spec_digest=SPEC,
        block_number=20,
        block_hash=tx("block 20"),
        log_index=0,
        tx_hash=tx("create job"),
        timestamp=T0 + 200,
        rounds_committed=2,
    )


def dataset(i: int) -> IndexedDataset:
    owner = HOSPITALS[i].address
    return IndexedDataset(
        dataset_id=DATASETS[i],
        registrant=owner,
        owner=owner,
        parent_id=0,
        uri=f"ipfs://dataset-{i}",
        block_number=10 + i,
        log_index=0,
        tx_hash=tx(f"register {i}"),
        timestamp=T0 + 100 + i,
        epoch=0,
        retired_block=None,
        retired_tx=None,
        transfers=(DeedTransfer(DATASETS[i], ZERO, owner, 10 + i, 1, tx(f"register {i}"), T0 + 100 + i),),
    )


def grant(i: int, block: int, timestamp: int, status: GrantStatus = GrantStatus.AUTHORIZED) -> GrantStateAt:
    issued = GrantEvent(
        dataset_id=DATASETS[i],
        grantee=LAB,
        purpose=AI,
        kind="issued",
        not_before=T0,
        expires_at=T0 + 86_400,
        block_number=14 + i,
        log_index=0,
        tx_hash=tx(f"grant {i}"),
        timestamp=T0 + 140 + i,
    )
    return GrantStateAt(
        dataset_id=DATASETS[i],
        grantee=LAB,
        purpose=AI,
        block_number=block,
        log_index=0,
        timestamp=timestamp,
        status=status,
        issued=issued,
        revocation=None,
        owner_change=None,
        retired_block=None,
        dataset_registered=True,
    )


def terms(i: int, dp: bool = True) -> GrantTerms:
    return GrantTerms(EPSILON, DELTA) if dp and DATASETS[i] == DP_DATASET else GrantTerms()


@functools.cache  # signing and the accountant are the slow part; the records are immutable
def signed(round_number: int, parent: bytes, i: int, dp: bool = True) -> SignedAttestation:
    privacy = None
    if dp and DATASETS[i] == DP_DATASET:
        privacy = PrivacyClaim(DP, epsilon_e6(cumulative_epsilon([DP] * round_number, DELTA)))
    attestation = Attestation(
        job_id=JOB,
        round=round_number,
        dataset_id=DATASETS[i],
        base_digest=parent,
        spec_digest=SPEC,
        update_digest=hashlib.sha256(update_bytes(round_number, i)).digest(),
        num_examples=examples(i),
        privacy=privacy,
    )
    return sign_attestation(HOSPITALS[i], CHAIN_ID, LEDGER, attestation)


def round_facts(round_number: int, parent: bytes, dp: bool = True) -> RoundFacts:
    attestations = [signed(round_number, parent, i, dp) for i in range(3)]
    manifest = RoundManifest.from_attestations(
        purpose=AI,
        spec_digest=SPEC,
        parent_digest=parent,
        model_digest=model_digest(model_bytes(round_number)),
        model_cid=cid_of(model_bytes(round_number)),
        signed_attestations=attestations,
        update_cids={DATASETS[i]: cid_of(update_bytes(round_number, i)) for i in range(3)},
        metrics={"loss": 0.5 / round_number, "accuracy": 0.8 + 0.05 * round_number},
    )
    block = 30 + 10 * round_number
    timestamp = T0 + 1000 * round_number
    committed = IndexedRound(
        job_id=JOB,
        round=round_number,
        parent_digest=parent,
        model_digest=manifest.model_digest,
        manifest_cid=cid_of(manifest.to_bytes()),
        participants=tuple(DATASETS),
        attestations_root=manifest.attestations_root,
        block_number=block,
        block_hash=tx(f"block {block}"),
        log_index=3,
        tx_hash=tx(f"commit round {round_number}"),
        timestamp=timestamp,
    )
    participants = []
    for i, entry in enumerate(manifest.participants):
        owner = HOSPITALS[i].address
        participants.append(
            ParticipantFacts(
                dataset_id=DATASETS[i],
                on_chain=True,
                in_job=True,
                entry=entry,
                dataset=dataset(i),
                owner=owner,
                owner_end_of_block=owner,
                recovered_signer=owner,
                grant=grant(i, block, timestamp),
                grant_end_of_block=grant(i, block, timestamp),
                chain_status=AuthorizationStatus.AUTHORIZED,
                chain_state=DatasetState(owner, 0, False),
                update_status="verified",
                terms=terms(i, dp),
                update_note=f"update {entry.update_cid} ({len(update_bytes(round_number, i))} bytes)",
            )
        )
    return RoundFacts(
        committed=committed,
        manifest=manifest,
        model_cid=manifest.model_cid,
        model_bytes_digest=manifest.model_digest,
        model_size=len(model_bytes(round_number)),
        computed_root=manifest.attestations_root,
        participants=participants,
        aggregate_digest=manifest.model_digest,
    )


SPEC_DOCUMENT: dict[str, Any] = {
    "model": {"kind": "logreg"},
    "preprocessing": {
        "label": "diagnosis",
        "columns": [
            {"name": "age", "kind": "numeric"},
            {"name": "size", "kind": "numeric"},
            {"name": "site", "kind": "categorical"},
        ],
    },
}


def lineage(rounds: int = 2, dp: bool = True) -> Lineage:
    """The honest job's lineage up to `rounds` (every check passes); without `dp`, no DP-SGD."""
    facts: list[RoundFacts] = []
    parent = INITIAL
    for r in range(1, rounds + 1):
        facts.append(round_facts(r, parent, dp))
        parent = facts[-1].committed.model_digest
    every = [f.committed for f in facts]
    return Lineage(
        target=AuditTarget(str(JOB), "job", JOB, rounds),
        job=dataclasses.replace(job(), rounds_committed=rounds),
        rounds=facts,
        chain_id=CHAIN_ID,
        training_ledger=LEDGER,
        rpc_url=RPC,
        synced_block=60,
        head_block=60,
        all_rounds=every,
        on_chain_job=JobRecord(
            LAB, rounds, AI, parent, keccak(b"".join(d.to_bytes(32, "big") for d in DATASETS)), SPEC
        ),
        chain_history=True,
        chain_history_note="",
        datasets={DATASETS[i]: dataset(i) for i in range(3)},
        spec=SPEC_DOCUMENT,
    )


def report(lin: Lineage | None = None, seconds: float = 0.25) -> AuditReport:
    """The audit report of `lin` (default: the honest lineage), its checks evaluated."""
    lin = lineage() if lin is None else lin
    return AuditReport(lin, evaluate(lin), seconds)


def participant(lin: Lineage, round_number: int, index: int) -> ParticipantFacts:
    """Round `round_number`'s facts about dataset `DATASETS[index]`."""
    facts = lin.rounds[round_number - 1]
    return next(p for p in facts.participants if p.dataset_id == DATASETS[index])


def ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def broken_lineage() -> Lineage:
    """The honest lineage with many lies and gaps at once, for the renderings' branches.

    Round 1: dataset 0's grant was revoked (logs and contract agree) and the deed changed hands;
    the model CID is unknown. Round 2: dataset 1 was committed on chain but the manifest omits
    it; dataset 0's signature does not recover and its owner is unknown; dataset 2's update is
    not in the store. Dataset 1 is retired; a dataset of round 2 is not registered. The target
    digest is also committed by job 8 round 1; the node keeps no historical state.
    """
    lin = lineage()
    revoked = GrantEvent(DATASETS[0], LAB, AI, "revoked", None, None, 38, 2, tx("revoke 0"), T0 + 900)
    transfer = DeedTransfer(DATASETS[0], HOSPITALS[0].address, LAB, 39, 0, tx("transfer 0"), T0 + 950)
    p = participant(lin, 1, 0)
    assert p.grant is not None
    p.grant = dataclasses.replace(
        p.grant, status=GrantStatus.REVOKED, revocation=revoked, owner_change=transfer
    )
    p.chain_status = AuthorizationStatus.REVOKED
    lin.rounds[0].model_cid = None
    q = participant(lin, 2, 1)
    q.entry = None
    q.recovered_signer = None
    q.update_status = None
    q.chain_status = None
    r = participant(lin, 2, 0)
    r.recovered_signer = None
    r.signature_error = "signature does not recover a public key: bad"
    r.owner = None
    s = participant(lin, 2, 2)
    s.update_status = "missing"
    s.update_note = f"update {s.entry.update_cid if s.entry else ''} is not in the content store"
    lin.rounds[1].aggregation_missing = (DATASETS[2],)
    lin.rounds[1].aggregate_digest = None
    # dataset 1 attests DP-SGD in round 1 under terms the auditor could not read
    t = participant(lin, 1, 1)
    assert t.entry is not None
    claim = PrivacyClaim(DP, epsilon_e6(cumulative_epsilon([DP], DELTA)))
    t.entry = t.entry.model_copy(update={"privacy": ParticipantPrivacy.of(claim)})
    t.terms = None
    lin.datasets[DATASETS[1]] = dataclasses.replace(dataset(1), retired_block=45, retired_tx=tx("retire 1"))
    del lin.datasets[DATASETS[0]]
    lin.target = dataclasses.replace(lin.target, also_in=((8, 1),))
    lin.chain_history = False
    lin.chain_history_note = "the RPC node keeps no state at block 40: checks at the rounds' blocks not made"
    lin.no_state_block = 40
    lin.spec = None
    return lin


def withheld_lineage() -> Lineage:
    """The honest lineage whose round 2 update of dataset 1 the lab did not hand over."""
    lin = lineage()
    p = participant(lin, 2, 1)
    p.update_status = "missing"
    p.update_note = f"update {p.entry.update_cid if p.entry else ''} is not in the content store"
    lin.rounds[1].aggregation_missing = (DATASETS[1],)
    lin.rounds[1].aggregate_digest = None
    lin.spec = {"model": {"kind": "logreg"}}
    return lin


GOLDEN = Path(__file__).with_name("golden")


@pytest.fixture()
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs in a time zone 5:30 ahead of UTC (renderings must still say UTC)."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def golden(name: str, text: str) -> None:
    """Fails unless `text` is the reviewed rendering in `tests/audit/golden/<name>`.

    `SOV_UPDATE_GOLDEN=1` rewrites the file instead (review the diff before committing it).
    The failure names the first differing line only: pytest's full diff of a page is slow.
    """
    path = GOLDEN / name
    if os.environ.get("SOV_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if text == expected:
        return
    got, want = text.splitlines(), expected.splitlines()
    line = next(
        (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want))
    )
    pytest.fail(
        f"{name} differs from {path} at line {line + 1}:\n"
        f"  got:      {got[line] if line < len(got) else '(end)'!r}\n"
        f"  expected: {want[line] if line < len(want) else '(end)'!r}",
        pytrace=False,
    )


def as_json(document: Any) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_table(report: AuditReport, *, all_checks: bool = False) -> str:
    """`report.print` on a 200-column ANSI terminal, styles included."""
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system="standard", legacy_windows=False)
    report.print(console, all_checks=all_checks)
    return out.getvalue()


def plain_lineage() -> Lineage:
    """The honest job without DP-SGD: no privacy budgets to show."""
    return lineage(dp=False)


VARIANTS = {"honest": lineage, "broken": broken_lineage, "withheld": withheld_lineage, "plain": plain_lineage}
