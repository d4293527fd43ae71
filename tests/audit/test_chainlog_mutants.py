"""`GrantTimeline`: a grant's state and a deed's holder at a chain position, from the logs alone.

Fast cases for `make mutation` (pure: the timeline is built from log records here); reading the
logs from a real chain is in `test_chainlog.py` and every audit test. Positions are (block, log
index): a fact counts only strictly before the round's own log, and `None` as log index is the
end of the block. The precedence is the contract's (`UsageGrants._status`): no grant / unknown
dataset, retired, revoked, owner changed, not yet valid, expired, authorized.
"""

from __future__ import annotations

import pytest

from ledger.audit.chainlog import (
    GrantTimeline,
    LargeRoundLog,
    ParticipantBatch,
    _topic_address,
    _topic_bytes,
    _topic_uint,
)
from ledger.index import ZERO_ADDRESS, DeedTransfer, GrantEvent, GrantStatus

DS = 0x1234
LAB = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OWNER = "0x" + "11" * 20
BUYER = "0x" + "22" * 20
AI = b"\x07" * 32


def _issued(
    block: int, log_index: int = 0, not_before: int | None = 100, expires_at: int | None = 200
) -> GrantEvent:
    return GrantEvent(DS, LAB, AI, "issued", not_before, expires_at, block, log_index, f"0xissue{block}", 0)


def _revoked(block: int, log_index: int = 0) -> GrantEvent:
    return GrantEvent(DS, LAB, AI, "revoked", None, None, block, log_index, f"0xrevoke{block}", 0)


def _transfer(block: int, log_index: int, frm: str, to: str) -> DeedTransfer:
    return DeedTransfer(DS, frm, to, block, log_index, f"0xtransfer{block}", 0)


MINT = _transfer(10, 1, ZERO_ADDRESS, OWNER)


def _timeline(
    events: tuple[GrantEvent, ...] = (),
    transfers: tuple[DeedTransfer, ...] = (MINT,),
    registered: tuple[int, int] | None = (10, 0),
    retired: tuple[int, int] | None = None,
) -> GrantTimeline:
    return GrantTimeline(DS, registered, retired, transfers, events)


def _status(
    timeline: GrantTimeline, block: int, log_index: int | None = 5, timestamp: int = 150
) -> GrantStatus:
    return timeline.at(LAB, AI, block, log_index, timestamp).status


def test_no_grant_or_unknown_dataset() -> None:
    assert _status(_timeline(), 20) is GrantStatus.NO_GRANT
    assert _status(_timeline(registered=None, transfers=()), 20) is GrantStatus.UNKNOWN_DATASET
    # registered at exactly the position: not yet
    assert _status(_timeline(registered=(20, 5)), 20, 5) is GrantStatus.UNKNOWN_DATASET
    assert _status(_timeline(registered=(20, 4)), 20, 5) is GrantStatus.NO_GRANT


def test_issue_counts_strictly_before_the_position() -> None:
    timeline = _timeline((_issued(20, 3),))
    assert _status(timeline, 20, 3) is GrantStatus.NO_GRANT
    assert _status(timeline, 20, 4) is GrantStatus.AUTHORIZED
    assert _status(timeline, 20, None) is GrantStatus.AUTHORIZED  # end of the block
    assert _status(timeline, 19, None) is GrantStatus.NO_GRANT


def test_window_bounds_are_inclusive() -> None:
    timeline = _timeline((_issued(20),))
    assert _status(timeline, 30, timestamp=99) is GrantStatus.NOT_YET_VALID
    assert _status(timeline, 30, timestamp=100) is GrantStatus.AUTHORIZED
    assert _status(timeline, 30, timestamp=200) is GrantStatus.AUTHORIZED
    assert _status(timeline, 30, timestamp=201) is GrantStatus.EXPIRED
    # a window missing its bounds reads as 0 (never valid after time 0)
    open_start = _timeline((_issued(20, not_before=None, expires_at=None),))
    assert _status(open_start, 30, timestamp=0) is GrantStatus.AUTHORIZED
    assert _status(open_start, 30, timestamp=1) is GrantStatus.EXPIRED


def test_revocation_after_the_issue_in_force() -> None:
    timeline = _timeline((_issued(20), _revoked(25, 2), _issued(30)))
    state = timeline.at(LAB, AI, 25, 3, 150)
    assert state.status is GrantStatus.REVOKED
    assert state.revocation == _revoked(25, 2) and state.issued == _issued(20)
    assert _status(timeline, 25, 2) is GrantStatus.AUTHORIZED  # the revocation's own position
    # re-issued later: the new grant is in force, the old revocation does not apply to it
    state = timeline.at(LAB, AI, 31, 0, 150)
    assert state.status is GrantStatus.AUTHORIZED and state.issued == _issued(30) and state.revocation is None
    # a revocation before the issue in force does not count
    assert _status(_timeline((_revoked(15), _issued(20))), 30) is GrantStatus.AUTHORIZED
    # nor one at the issue's own position ordering before it (same block, earlier log)
    assert _status(_timeline((_revoked(20, 0), _issued(20, 1))), 30) is GrantStatus.AUTHORIZED


def test_a_deed_transfer_after_the_issue_ends_the_grant() -> None:
    sale = _transfer(25, 1, OWNER, BUYER)
    timeline = _timeline((_issued(20),), (MINT, sale))
    state = timeline.at(LAB, AI, 30, 0, 150)
    assert state.status is GrantStatus.OWNER_CHANGED and state.owner_change == sale
    assert _status(timeline, 25, 1) is GrantStatus.AUTHORIZED  # at the transfer's own position
    assert _status(timeline, 25, 2) is GrantStatus.OWNER_CHANGED
    # a transfer before the issue, the mint and a burn do not end it
    before = _transfer(15, 0, OWNER, BUYER)
    assert _status(_timeline((_issued(20),), (MINT, before)), 30) is GrantStatus.AUTHORIZED
    burn = _transfer(25, 0, OWNER, ZERO_ADDRESS)
    assert _status(_timeline((_issued(20),), (MINT, burn)), 30) is GrantStatus.AUTHORIZED
    remint = _transfer(25, 0, ZERO_ADDRESS, BUYER)
    assert _status(_timeline((_issued(20),), (MINT, remint)), 30) is GrantStatus.AUTHORIZED


def test_precedence_is_the_contracts() -> None:
    everything = (_issued(20), _revoked(21))
    sale = (MINT, _transfer(22, 0, OWNER, BUYER))
    assert (
        _status(_timeline(everything, sale, retired=(23, 0)), 30, timestamp=999)
        is GrantStatus.DATASET_RETIRED
    )
    assert _status(_timeline(everything, sale), 30, timestamp=999) is GrantStatus.REVOKED
    assert _status(_timeline((_issued(20),), sale), 30, timestamp=999) is GrantStatus.OWNER_CHANGED
    assert _status(_timeline((_issued(20),)), 30, timestamp=999) is GrantStatus.EXPIRED
    # retired without a grant is still "no grant"
    assert _status(_timeline(retired=(15, 0)), 30) is GrantStatus.NO_GRANT


def test_retirement_counts_strictly_before_and_is_reported() -> None:
    timeline = _timeline((_issued(20),), retired=(25, 3))
    assert _status(timeline, 25, 3) is GrantStatus.AUTHORIZED
    state = timeline.at(LAB, AI, 25, 4, 150)
    assert state.status is GrantStatus.DATASET_RETIRED and state.retired_block == 25
    assert timeline.at(LAB, AI, 25, 3, 150).retired_block is None


def test_state_carries_the_position_asked() -> None:
    state = _timeline((_issued(20),)).at(LAB, AI, 30, None, 150)
    assert (state.dataset_id, state.grantee, state.purpose) == (DS, LAB, AI)
    assert (state.block_number, state.log_index, state.timestamp) == (30, None, 150)
    assert _timeline((_issued(20),)).at(LAB, AI, 30, 4, 150).log_index == 4
    assert state.dataset_registered is True
    assert _timeline(registered=None).at(LAB, AI, 30, 0, 0).dataset_registered is False


def test_owner_at_a_position() -> None:
    sale = _transfer(25, 1, OWNER, BUYER)
    burn = _transfer(28, 0, BUYER, ZERO_ADDRESS)
    timeline = _timeline(transfers=(MINT, sale, burn))
    assert timeline.owner_at(10, 1) is None  # the mint's own position
    assert timeline.owner_at(10, 2) == OWNER
    assert timeline.owner_at(25, 1) == OWNER
    assert timeline.owner_at(25, 2) == BUYER
    assert timeline.owner_at(25, None) == BUYER
    assert timeline.owner_at(24, None) == OWNER
    assert timeline.owner_at(30, 0) is None  # burnt
    assert _timeline(transfers=()).owner_at(30, None) is None


def test_topics_are_32_byte_words() -> None:
    assert _topic_uint(5) == "0x" + "0" * 63 + "5"
    assert _topic_address(LAB) == "0x" + "0" * 24 + LAB[2:].lower()
    assert _topic_bytes(b"\x01\x02") == "0x0102"


def test_large_round_participants_and_batches() -> None:
    first = ParticipantBatch((1, 2), 40, 1, "0xa", 1000)
    second = ParticipantBatch((3,), 41, 0, "0xb", 1010)
    large = LargeRoundLog(1, 3, b"\x00" * 32, (first, second))
    assert large.participants == (1, 2, 3)
    assert large.batch_of(2) == first and large.batch_of(3) == second and large.batch_of(4) is None


@pytest.mark.parametrize("log_index", [0, None])
def test_no_transfers_no_owner(log_index: int | None) -> None:
    assert _timeline(transfers=()).owner_at(30, log_index) is None
