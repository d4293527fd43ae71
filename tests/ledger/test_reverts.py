"""Every contract custom error surfaces as its own Python exception, with a readable message,
before anything is sent: the account's nonce, the chain height and the contract state are
unchanged after each rejected write."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from ledger.chain.client import LedgerClient
from ledger.chain.revert import RevertDecoder
from ledger.chain.types import GrantTerms
from ledger.errors import (
    ContractPanicError,
    ContractRevertError,
    DatasetAlreadyRegisteredError,
    DatasetAlreadyRetiredError,
    DatasetRetiredError,
    DatasetsNotSortedError,
    DeedIncorrectOwnerError,
    DeedInsufficientApprovalError,
    DeedInvalidOperatorError,
    DeedInvalidReceiverError,
    DeedNonexistentError,
    GrantExpiredError,
    GrantNotYetValidError,
    GrantOwnerChangedError,
    GrantRevocationFinalError,
    GrantRevokedError,
    GrantTermsError,
    GrantTermsViolatedError,
    GrantUnknownDatasetError,
    InvalidDatasetCountError,
    InvalidGranteeError,
    InvalidGrantNonceError,
    InvalidGrantSignatureError,
    InvalidGrantTermsError,
    InvalidGrantWindowError,
    InvalidParticipantsError,
    InvalidPurposeError,
    JobDatasetsMismatchError,
    JobInvalidPurposeError,
    JobUnknownDatasetError,
    NoGrantError,
    NonceNotAheadError,
    NotAuthorizedError,
    NotCoordinatorError,
    NotOwnerError,
    NotOwnerOrOperatorError,
    ParentDigestMismatchError,
    RoundLimitExceededError,
    RoundOutOfOrderError,
    SignedGrantExpiredError,
    TooFewParticipantsError,
    UnknownDatasetError,
    UnknownJobError,
    UnknownParentError,
    ZeroContentRootError,
    ZeroModelDigestError,
)
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from ledger.signed_grants import grant_typed_data, sign_grant
from tests.conftest import DeployedChain
from tests.ledger.conftest import advance_time

AI = PURPOSES["ai-training"]
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
M0, M1 = keccak(b"model-0"), keccak(b"model-1")


@dataclass
class World:
    """dev1 owns dataset `dataset_id`, granted to dev2 (the lab) for ai-training; the lab runs job 1."""

    chain: DeployedChain
    owner: LedgerClient
    lab: LedgerClient
    stranger: LedgerClient
    dataset_id: int
    now: int
    job_id: int

    def snapshot(self, *extra: Callable[[], Any]) -> tuple[Any, ...]:
        """Everything a rejected write must leave as it was."""
        client = self.owner
        accounts = [self.owner.address, self.lab.address, self.stranger.address]
        return (
            client.latest_block().number,
            tuple(client.transport.request("eth_getTransactionCount", [a, "pending"]) for a in accounts),
            client.dataset_state(self.dataset_id),
            client.get_grant(self.dataset_id, str(self.lab.address), AI),
            client.get_job(self.job_id),
            client.job_count(),
            client.nonces(str(self.owner.address)),
            *(f() for f in extra),
        )


def root(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@pytest.fixture()
def world(any_chain: DeployedChain) -> World:
    """Runs each revert test on anvil and on hardhat node."""
    deployed = any_chain
    owner, lab, stranger = deployed[1], deployed[2], deployed[3]
    assert lab.address is not None
    dataset_id, _ = owner.register_dataset(root("main"), uri="ipfs://main")
    now = owner.latest_block().timestamp
    owner.issue_grant(dataset_id, lab.address, AI, now, now + 3600)
    job_id, _ = lab.create_job(AI, [dataset_id], M0, keccak(b"spec"))
    return World(deployed, owner, lab, stranger, dataset_id, now, job_id)


def rejected(
    world: World,
    action: Callable[[], Any],
    error_type: type[ContractRevertError],
    message: str,
    *extra_state: Callable[[], Any],
) -> ContractRevertError:
    """Run `action`, expect `error_type` with `message` (a regex), and an unchanged world."""
    before = world.snapshot(*extra_state)
    with pytest.raises(error_type) as caught:
        action()
    assert type(caught.value) is error_type
    assert re.search(message, str(caught.value)), str(caught.value)
    assert caught.value.error_name in str(caught.value)
    assert world.snapshot(*extra_state) == before
    return caught.value


# --- DatasetRegistry ------------------------------------------------------------------


def test_already_registered_names_current_owner(world: World) -> None:
    error = rejected(
        world,
        lambda: world.stranger.register_dataset(root("main")),
        DatasetAlreadyRegisteredError,
        f"dataset 0x{world.dataset_id:064x} is already registered; its deed is held by {world.owner.address}",
    )
    assert isinstance(error, FileExistsError)
    assert error.args_by_name == {"datasetId": world.dataset_id, "owner": world.owner.address}


def test_unknown_dataset_on_retire(world: World) -> None:
    error = rejected(
        world,
        lambda: world.owner.retire_dataset(777),
        UnknownDatasetError,
        r"dataset 0x0+309 is not registered",
    )
    assert isinstance(error, LookupError) and error.error_name == "DatasetRegistryUnknownDataset"


def test_unknown_parent(world: World) -> None:
    rejected(
        world,
        lambda: world.owner.register_dataset(root("child"), parent_id=4242),
        UnknownParentError,
        r"parent dataset 0x0+1092 is not registered",
        lambda: world.owner.dataset_state(root("child")),
    )


def test_zero_root(world: World) -> None:
    error = rejected(
        world,
        lambda: world.owner.register_dataset(b"\0" * 32),
        ZeroContentRootError,
        "a content root of zero is not a content hash",
    )
    assert isinstance(error, ValueError)


def test_not_owner_on_retire(world: World) -> None:
    error = rejected(
        world,
        lambda: world.stranger.retire_dataset(world.dataset_id),
        NotOwnerError,
        f"owner of dataset 0x{world.dataset_id:064x} \\({world.owner.address}\\).*caller is "
        f"{world.stranger.address}",
    )
    assert isinstance(error, PermissionError)


def test_already_retired(world: World) -> None:
    world.owner.retire_dataset(world.dataset_id)
    rejected(
        world,
        lambda: world.owner.retire_dataset(world.dataset_id),
        DatasetAlreadyRetiredError,
        "is already retired; retirement is irreversible",
    )


# --- UsageGrants ----------------------------------------------------------------------


def test_grant_on_unknown_dataset(world: World) -> None:
    error = rejected(
        world,
        lambda: world.owner.issue_grant(99, str(world.lab.address), AI, world.now, world.now + 9),
        GrantUnknownDatasetError,
        r"dataset 0x0+63 is not registered; register it before granting",
    )
    assert isinstance(error, UnknownDatasetError)


def test_grant_by_non_owner(world: World) -> None:
    error = rejected(
        world,
        lambda: world.stranger.issue_grant(
            world.dataset_id, str(world.stranger.address), AI, world.now, world.now + 9
        ),
        NotOwnerOrOperatorError,
        f"or an operator it approved may grant or revoke; caller is {world.stranger.address}",
    )
    assert isinstance(error, NotOwnerError) and isinstance(error, PermissionError)


def test_grant_on_retired_dataset(world: World) -> None:
    world.owner.retire_dataset(world.dataset_id)
    rejected(
        world,
        lambda: world.owner.issue_grant(
            world.dataset_id, str(world.stranger.address), AI, world.now, world.now + 9
        ),
        DatasetRetiredError,
        r"is retired \(consent withdrawn\)",
    )


def test_grant_to_zero_address(world: World) -> None:
    rejected(
        world,
        lambda: world.owner.issue_grant(world.dataset_id, ZERO_ADDRESS, AI, world.now, world.now + 9),
        InvalidGranteeError,
        f"grantee {ZERO_ADDRESS} is not a valid grantee address",
    )


def test_grant_with_zero_purpose(world: World) -> None:
    error = rejected(
        world,
        lambda: world.owner.issue_grant(
            world.dataset_id, str(world.stranger.address), b"\0" * 32, world.now, world.now + 9
        ),
        InvalidPurposeError,
        "purpose 0x0{64} is not a purpose id",
    )
    assert error.error_name == "UsageGrantsInvalidPurpose"


def test_grant_with_empty_window(world: World) -> None:
    rejected(
        world,
        lambda: world.owner.issue_grant(
            world.dataset_id, str(world.stranger.address), AI, world.now + 100, world.now + 50
        ),
        InvalidGrantWindowError,
        rf"grant window from {world.now + 100} \(.*UTC\) to {world.now + 50} .* is empty",
    )


def test_revoke_missing_grant(world: World) -> None:
    error = rejected(
        world,
        lambda: world.owner.revoke_grant(world.dataset_id, str(world.stranger.address), AI),
        NoGrantError,
        f"{world.stranger.address} holds no grant on dataset 0x{world.dataset_id:064x} for ai-training",
    )
    assert isinstance(error, NotAuthorizedError) and isinstance(error, LookupError)


def test_commit_with_not_yet_valid_grant(world: World) -> None:
    world.owner.issue_grant(world.dataset_id, str(world.lab.address), AI, world.now + 500, world.now + 900)
    rejected(
        world,
        lambda: world.lab.commit_round(
            world.job_id, 1, M0, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        GrantNotYetValidError,
        rf"for ai-training is valid only from {world.now + 500}",
    )


def test_commit_with_expired_grant(world: World) -> None:
    advance_time(world.chain, 3601 + 5)
    error = rejected(
        world,
        lambda: world.lab.commit_round(
            world.job_id, 1, M0, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        GrantExpiredError,
        rf"for ai-training expired at {world.now + 3600} \(",
    )
    assert isinstance(error, PermissionError)


def test_revoke_twice(world: World) -> None:
    world.owner.revoke_grant(world.dataset_id, str(world.lab.address), AI)
    rejected(
        world,
        lambda: world.owner.revoke_grant(world.dataset_id, str(world.lab.address), AI),
        GrantRevokedError,
        f"the grant of dataset 0x{world.dataset_id:064x} to {world.lab.address} for ai-training was revoked",
    )


def test_commit_after_deed_transfer(world: World) -> None:
    world.owner.transfer_dataset(world.dataset_id, str(world.stranger.address))
    rejected(
        world,
        lambda: world.lab.commit_round(
            world.job_id, 1, M0, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        GrantOwnerChangedError,
        "was issued by an earlier owner of the deed",
    )


def _signed(world: World, signer_index: int, nonce: int, deadline: int) -> dict[str, Any]:
    typed = grant_typed_data(
        world.owner.chain_id,
        world.chain.deployment.address("UsageGrants"),
        world.dataset_id,
        str(world.stranger.address),
        AI,
        world.now,
        world.now + 100,
        nonce,
        deadline,
    )
    return sign_grant(dev_account(signer_index), typed)


def test_signed_grant_past_deadline(world: World) -> None:
    signed = _signed(world, 1, 0, world.now + 10)
    advance_time(world.chain, 20)
    rejected(
        world,
        lambda: world.stranger.issue_grant_by_sig(signed),
        SignedGrantExpiredError,
        rf"deadline {world.now + 10} \(.*\) has passed",
    )


def test_signed_grant_by_someone_else(world: World) -> None:
    signed = _signed(world, 3, 0, world.now + 1000)
    rejected(
        world,
        lambda: world.stranger.issue_grant_by_sig(signed),
        InvalidGrantSignatureError,
        f"the signature is not that of {world.owner.address}, the owner of dataset",
    )


def test_signed_grant_replayed(world: World) -> None:
    signed = _signed(world, 1, 0, world.now + 1000)
    world.stranger.issue_grant_by_sig(signed)
    error = rejected(
        world,
        lambda: world.stranger.issue_grant_by_sig(signed),
        InvalidGrantNonceError,
        f"carries nonce 0 but {world.owner.address}'s next nonce is 1",
    )
    assert error.args_by_name == {"owner": world.owner.address, "expected": 1, "given": 0}


def _signed_for_lab(world: World, nonce: int) -> dict[str, Any]:
    """The owner's signature of the world's own key (dataset, lab, ai-training), not yet redeemed."""
    typed = grant_typed_data(
        world.owner.chain_id,
        world.chain.deployment.address("UsageGrants"),
        world.dataset_id,
        str(world.lab.address),
        AI,
        world.now,
        world.now + 5000,
        nonce,
        world.now + 1000,
    )
    return sign_grant(dev_account(1), typed)


def _final_message(world: World) -> str:
    return (
        f"the grant of dataset 0x{world.dataset_id:064x} to {world.lab.address} for ai-training was "
        "revoked or renounced since the deed's last transfer, and a revocation cannot be undone by a "
        "signature; the owner can issue it directly with `sov grant issue`"
    )


def test_signed_grant_cannot_undo_a_revocation(world: World) -> None:
    """A dishonest lab keeps an unredeemed signature and redeems it after the owner revoked."""
    pending = _signed_for_lab(world, 0)
    lab = str(world.lab.address)
    world.owner.revoke_grant(world.dataset_id, lab, AI)
    error = rejected(
        world, lambda: world.lab.issue_grant_by_sig(pending), GrantRevocationFinalError, _final_message(world)
    )
    assert isinstance(error, PermissionError)
    assert error.args_by_name == {"datasetId": world.dataset_id, "grantee": world.lab.address, "purpose": AI}
    assert world.owner.authorization_status(world.dataset_id, lab, AI).name == "REVOKED"
    grant = world.owner.get_grant(world.dataset_id, lab, AI)
    assert grant.revoked and grant.signatures_refused_in(0) and not grant.signatures_refused_in(1)


def test_signed_grant_cannot_undo_a_renunciation(world: World) -> None:
    pending = _signed_for_lab(world, 0)
    world.lab.renounce_grant(world.dataset_id, AI)
    rejected(
        world, lambda: world.stranger.issue_grant_by_sig(pending), GrantRevocationFinalError, "renounced"
    )


def test_signed_grant_cannot_overwrite_a_reissued_grant(world: World) -> None:
    """After a revocation the owner re-issues a shorter grant; the old signature must not replace it."""
    pending = _signed_for_lab(world, 0)
    lab = str(world.lab.address)
    world.owner.revoke_grant(world.dataset_id, lab, AI)
    world.owner.issue_grant(world.dataset_id, lab, AI, world.now, world.now + 60)
    rejected(
        world, lambda: world.lab.issue_grant_by_sig(pending), GrantRevocationFinalError, _final_message(world)
    )
    grant = world.owner.get_grant(world.dataset_id, lab, AI)
    assert (grant.expires_at, grant.revoked, grant.revoked_once) == (world.now + 60, False, True)


def test_new_owner_signature_works_after_transfer(world: World) -> None:
    lab = str(world.lab.address)
    world.owner.revoke_grant(world.dataset_id, lab, AI)
    world.owner.transfer_dataset(world.dataset_id, str(world.stranger.address))
    typed = grant_typed_data(
        world.owner.chain_id,
        world.chain.deployment.address("UsageGrants"),
        world.dataset_id,
        lab,
        AI,
        world.now,
        world.now + 5000,
        0,
        world.now + 1000,
    )
    world.lab.issue_grant_by_sig(sign_grant(dev_account(3), typed))
    assert world.owner.is_authorized(world.dataset_id, lab, AI)


def test_cancelled_signature_is_refused(world: World) -> None:
    pending = _signed(world, 1, 0, world.now + 1000)
    next_nonce, receipt = world.owner.invalidate_nonces()
    assert next_nonce == 1
    assert receipt.event("NoncesInvalidated").args == {"owner": world.owner.address, "newNonce": 1}
    error = rejected(
        world,
        lambda: world.stranger.issue_grant_by_sig(pending),
        InvalidGrantNonceError,
        f"carries nonce 0 but {world.owner.address}'s next nonce is 1 "
        r"\(already redeemed, cancelled by the owner, or signed out of order\)",
    )
    assert error.args_by_name == {"owner": world.owner.address, "expected": 1, "given": 0}
    assert world.owner.get_grant(world.dataset_id, str(world.stranger.address), AI).expires_at == 0


def test_cancel_signatures_never_goes_back(world: World) -> None:
    assert world.owner.invalidate_nonces(5)[0] == 6
    error = rejected(
        world,
        lambda: world.owner.invalidate_nonces(3),
        NonceNotAheadError,
        f"{world.owner.address}'s next nonce is already 6: nonces up to 3 are used or cancelled; "
        r"pass --up-to 6 or more",
    )
    assert error.args_by_name == {"owner": world.owner.address, "current": 6, "upTo": 3}
    rejected(world, lambda: world.owner.invalidate_nonces(2**256 - 1), NonceNotAheadError, "below 2")


def test_invalid_terms_epsilon_without_delta(world: World) -> None:
    lab = str(world.lab.address)
    # GrantTerms refuses this before any RPC; the raw call shows the contract refuses it too.
    with pytest.raises(GrantTermsError, match=r"epsilon 3 and delta 0: set both"):
        GrantTerms(3, 0)
    error = rejected(
        world,
        lambda: world.owner._transact(
            "UsageGrants",
            "issueGrant",
            [world.dataset_id, lab, AI, world.now, world.now + 60, (300, 0, 2, 0)],
            "issue grant",
        ),
        InvalidGrantTermsError,
        r"grant terms with epsilonHundredths 300 and deltaNegExponent 0: epsilon and delta must both be set",
    )
    assert isinstance(error, ValueError)
    assert error.args_by_name == {"epsilonHundredths": 300, "deltaNegExponent": 0}


def _terms_world(world: World, terms: GrantTerms) -> tuple[int, int]:
    """A second dataset of the owner granted with `terms`, and a lab job over both datasets."""
    lab = str(world.lab.address)
    second, _ = world.owner.register_dataset(root("second"))
    world.owner.issue_grant(second, lab, AI, world.now, world.now + 3600, terms)
    job_id, _ = world.lab.create_job(AI, sorted([world.dataset_id, second]), M0, keccak(b"spec"))
    return second, job_id


def test_commit_with_too_few_participants(world: World) -> None:
    second, job = _terms_world(world, GrantTerms(min_participants=2))
    datasets = sorted([world.dataset_id, second])
    error = rejected(
        world,
        lambda: world.lab.commit_round(job, 1, M0, M1, "cid", datasets, [second], keccak(b"a")),
        TooFewParticipantsError,
        rf"the grant of dataset 0x{second:064x} to {world.lab.address} for ai-training requires at least "
        r"2 participants per round; this round has 1",
        lambda: world.owner.get_job(job),
    )
    assert isinstance(error, GrantTermsViolatedError) and isinstance(error, NotAuthorizedError)
    assert error.args_by_name["minParticipants"] == 2 and error.args_by_name["participants"] == 1
    # Both datasets: enough participants, the round commits.
    world.lab.commit_round(job, 1, M0, M1, "cid", datasets, datasets, keccak(b"a"))
    assert world.owner.get_job(job).last_round == 1


def test_commit_past_max_rounds(world: World) -> None:
    second, job = _terms_world(world, GrantTerms(3, 1e-5, max_rounds=1))
    datasets = sorted([world.dataset_id, second])
    world.lab.commit_round(job, 1, M0, M1, "cid", datasets, datasets, keccak(b"a"))
    m2 = keccak(b"model-2")
    error = rejected(
        world,
        lambda: world.lab.commit_round(job, 2, M1, m2, "cid", datasets, datasets, keccak(b"b")),
        RoundLimitExceededError,
        rf"the grant of dataset 0x{second:064x} to {world.lab.address} for ai-training allows rounds 1 to 1 "
        r"of a job; this is round 2",
        lambda: world.owner.get_job(job),
    )
    assert isinstance(error, PermissionError)
    assert world.owner.get_grant(second, str(world.lab.address), AI).terms == GrantTerms(3, 1e-5, 0, 1)
    # The same check as a view, before sending anything.
    with pytest.raises(RoundLimitExceededError):
        world.lab.require_round_authorized([second], str(world.lab.address), AI, 2)
    world.lab.require_round_authorized([world.dataset_id], str(world.lab.address), AI, 2)


# --- TrainingLedger -------------------------------------------------------------------


def test_unknown_job(world: World) -> None:
    rejected(
        world,
        lambda: world.lab.commit_round(
            99, 1, M0, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        UnknownJobError,
        "job 99 does not exist",
    )


def test_not_coordinator(world: World) -> None:
    rejected(
        world,
        lambda: world.stranger.commit_round(
            world.job_id, 1, M0, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        NotCoordinatorError,
        f"only job 1's coordinator {world.lab.address} may commit rounds; caller is {world.stranger.address}",
    )


def test_round_out_of_order(world: World) -> None:
    error = rejected(
        world,
        lambda: world.lab.commit_round(
            world.job_id, 3, M0, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        RoundOutOfOrderError,
        "job 1 expects round 1 next, not round 3",
    )
    assert error.args_by_name == {"jobId": 1, "expected": 1, "given": 3}


def test_parent_mismatch(world: World) -> None:
    rejected(
        world,
        lambda: world.lab.commit_round(
            world.job_id, 1, M1, M1, "cid", [world.dataset_id], [world.dataset_id], keccak(b"a")
        ),
        ParentDigestMismatchError,
        f"last committed model digest is 0x{M0.hex()}, but the round builds on 0x{M1.hex()}",
    )


def test_datasets_mismatch(world: World) -> None:
    other, _ = world.owner.register_dataset(root("other"))
    rejected(
        world,
        lambda: world.lab.commit_round(world.job_id, 1, M0, M1, "cid", [other], [other], keccak(b"a")),
        JobDatasetsMismatchError,
        "but job 1's dataset list hashes to 0x",
    )


def test_invalid_participants(world: World) -> None:
    rejected(
        world,
        lambda: world.lab.commit_round(world.job_id, 1, M0, M1, "cid", [world.dataset_id], [], keccak(b"a")),
        InvalidParticipantsError,
        "participant mask 0x0 of job 1 selects no dataset or one past its 1 datasets",
    )


def test_invalid_dataset_count(world: World) -> None:
    rejected(
        world,
        lambda: world.lab.create_job(AI, [], M0, keccak(b"spec")),
        InvalidDatasetCountError,
        "a job needs between 1 and 256 datasets, not 0",
    )


def test_datasets_not_sorted(world: World) -> None:
    other, _ = world.owner.register_dataset(root("other"))
    high, low = max(other, world.dataset_id), min(other, world.dataset_id)
    rejected(
        world,
        lambda: world.lab.create_job(AI, [high, low], M0, keccak(b"spec")),
        DatasetsNotSortedError,
        f"dataset 0x{low:064x} at index 1 breaks the order",
    )


def test_job_with_unknown_dataset(world: World) -> None:
    rejected(
        world,
        lambda: world.lab.create_job(AI, [5], M0, keccak(b"spec")),
        JobUnknownDatasetError,
        r"job dataset 0x0+5 is not registered",
    )


def test_job_with_zero_purpose(world: World) -> None:
    error = rejected(
        world,
        lambda: world.lab.create_job(b"\0" * 32, [world.dataset_id], M0, keccak(b"spec")),
        JobInvalidPurposeError,
        "purpose 0x0{64} is not a purpose id",
    )
    assert isinstance(error, InvalidPurposeError)


def test_job_with_zero_digest(world: World) -> None:
    rejected(
        world,
        lambda: world.lab.create_job(AI, [world.dataset_id], b"\0" * 32, keccak(b"spec")),
        ZeroModelDigestError,
        "a model digest of zero is not a digest",
    )


# --- ERC-721 errors of the deed -------------------------------------------------------


def test_transfer_by_stranger(world: World) -> None:
    rejected(
        world,
        lambda: world.stranger.transfer_dataset(world.dataset_id, str(world.stranger.address)),
        DeedInsufficientApprovalError,
        f"{world.stranger.address} is neither the owner nor approved for the deed",
    )


def test_transfer_to_contract_without_receiver(world: World) -> None:
    target = world.chain.deployment.address("UsageGrants")
    rejected(
        world,
        lambda: world.owner.transfer_dataset(world.dataset_id, target),
        DeedInvalidReceiverError,
        f"{target} cannot receive a dataset deed",
    )


def test_transfer_unknown_dataset(world: World) -> None:
    rejected(
        world,
        lambda: world.owner.transfer_dataset(31337, str(world.stranger.address)),
        DeedNonexistentError,
        r"dataset 0x0+7a69 is not registered",
    )


def test_zero_operator(world: World) -> None:
    rejected(
        world,
        lambda: world.owner.set_operator(ZERO_ADDRESS, True),
        DeedInvalidOperatorError,
        f"{ZERO_ADDRESS} cannot be an operator",
    )


# --- decoder details that no contract path reaches ------------------------------------


def test_decoder_incorrect_owner_panic_and_unknown(deployed: DeployedChain) -> None:
    decoder: RevertDecoder = deployed[0].decoder
    a, b = dev_account(1).address, dev_account(2).address
    data = keccak(text="ERC721IncorrectOwner(address,uint256,address)")[:4] + encode(
        ["address", "uint256", "address"], [a, 7, b]
    )
    error = decoder.decode(data, "transfer")
    assert isinstance(error, DeedIncorrectOwnerError)
    assert str(error).startswith(f"transfer: {a} does not hold the deed of dataset 0x{7:064x}; {b} does")

    panic = decoder.decode(keccak(text="Panic(uint256)")[:4] + encode(["uint256"], [0x11]))
    assert isinstance(panic, ContractPanicError) and "arithmetic overflow" in str(panic)

    reason = decoder.decode(keccak(text="Error(string)")[:4] + encode(["string"], ["plain reason"]))
    assert type(reason) is ContractRevertError and "reason=plain reason" in str(reason)

    unknown = decoder.decode(bytes.fromhex("deadbeef") + b"\0" * 32)
    assert "unknown error 0xdeadbeef" in str(unknown)
    assert str(decoder.decode(b"", "x")) == "x: the contract reverted without a reason"
