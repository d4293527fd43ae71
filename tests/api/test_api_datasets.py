"""`/v1/datasets` against a real devnet: success paths and every failure mode, with state checks."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from ledger.chain.client import LedgerClient
from ledger.keys import dev_account
from ledger.store import cid_of, content_root

DEV0 = str(dev_account(0).address)
DEV1 = str(dev_account(1).address)


def test_register_show_and_list(
    client: TestClient, auth: dict[str, str], new_root: Callable[[], str]
) -> None:
    root = new_root()
    response = client.post("/v1/datasets", json={"content_root": root, "uri": "ipfs://a"}, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["dataset"]["dataset_id"] == str(int(root, 16))
    assert body["dataset"]["owner"] == DEV0
    assert body["receipt"]["tx_hash"].startswith("0x")

    shown = client.get(f"/v1/datasets/{root}")  # 0x-hex id form
    assert shown.status_code == 200
    assert shown.json()["uri"] == "ipfs://a"
    assert shown.json()["registered_block"] == body["receipt"]["block_number"]

    mine = client.get("/v1/datasets", params={"owner": DEV0}).json()
    assert str(int(root, 16)) in [d["dataset_id"] for d in mine["items"]]
    theirs = client.get("/v1/datasets", params={"owner": DEV1}).json()
    assert str(int(root, 16)) not in [d["dataset_id"] for d in theirs["items"]]


def test_register_by_cid_uses_its_digest(client: TestClient, auth: dict[str, str]) -> None:
    cid = cid_of(b"hospital-b rows " + bytes(8))
    response = client.post("/v1/datasets", json={"cid": cid, "parent_id": "0"}, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["dataset"]["dataset_id"] == str(int.from_bytes(content_root(cid), "big"))


def test_register_new_version_links_parent(
    client: TestClient, auth: dict[str, str], registered: dict[str, object], new_root: Callable[[], str]
) -> None:
    response = client.post(
        "/v1/datasets",
        json={"content_root": new_root(), "parent_id": registered["dataset_id_hex"]},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    assert response.json()["dataset"]["parent_id"] == registered["dataset_id"]


def test_register_twice_is_409_with_owner(
    client: TestClient,
    auth: dict[str, str],
    registered: dict[str, object],
    chain: Callable[[int], LedgerClient],
) -> None:
    response = client.post("/v1/datasets", json={"content_root": registered["dataset_id_hex"]}, headers=auth)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "dataset_registry_already_registered"
    assert error["details"]["revert"] == "DatasetRegistryAlreadyRegistered"
    assert error["details"]["args"]["owner"] == DEV0
    assert "already registered" in error["message"]
    assert chain(0).dataset_state(int(str(registered["dataset_id"]))).epoch == 0


def test_unknown_parent_is_404_and_nothing_registered(
    client: TestClient,
    auth: dict[str, str],
    new_root: Callable[[], str],
    chain: Callable[[int], LedgerClient],
) -> None:
    root = new_root()
    response = client.post("/v1/datasets", json={"content_root": root, "parent_id": new_root()}, headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["details"]["revert"] == "DatasetRegistryUnknownParent"
    assert not chain(0).dataset_state(int(root, 16)).registered


def test_write_without_or_with_wrong_token_is_401(
    client: TestClient, new_root: Callable[[], str], chain: Callable[[int], LedgerClient]
) -> None:
    root = new_root()
    missing = client.post("/v1/datasets", json={"content_root": root})
    assert missing.status_code == 401
    assert missing.json()["error"] == {
        "code": "unauthorized",
        "message": "missing bearer token: send 'Authorization: Bearer <token>'",
        "details": {},
    }
    wrong_token = "not-the-token-" + "x" * 20
    wrong = client.post(
        "/v1/datasets", json={"content_root": root}, headers={"Authorization": f"Bearer {wrong_token}"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "the bearer token is not this service's token"
    assert wrong_token not in wrong.text
    assert not chain(0).dataset_state(int(root, 16)).registered


def test_malformed_bodies_are_422_with_precise_messages(
    client: TestClient, auth: dict[str, str], new_root: Callable[[], str]
) -> None:
    before = client.get("/v1/datasets").json()["total"]
    cases = [
        (
            {"content_root": "0x1234"},
            "content_root",
            "is not 32 bytes: expected 0x followed by 64 hex digits",
        ),
        ({"cid": "bafynotacid"}, "cid", "is not a valid sha2-256 CIDv1"),
        (
            {"content_root": new_root(), "cid": cid_of(b"x")},
            "request",
            "give exactly one of content_root or cid",
        ),
        ({}, "request", "give exactly one of content_root or cid"),
        ({"content_root": new_root(), "colour": "red"}, "colour", "Extra inputs are not permitted"),
        (
            {"content_root": new_root(), "parent_id": "12abc"},
            "parent_id",
            "expected a uint256 in decimal or 0x-hex",
        ),
        ({"content_root": new_root(), "parent_id": str(2**256)}, "parent_id", "is outside 0..2**256-1"),
    ]
    for body, field, fragment in cases:
        response = client.post("/v1/datasets", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert fragment in error["message"], (body, error["message"])
        assert field in [f["field"] for f in error["details"]["fields"]], (body, error)
    assert client.get("/v1/datasets").json()["total"] == before


def test_zero_root_is_422(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/datasets", json={"content_root": "0x" + "00" * 32}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "content_root: zero is not a content hash"


def test_oversized_payload_is_422_before_parsing(
    client: TestClient, auth: dict[str, str], new_root: Callable[[], str]
) -> None:
    before = client.get("/v1/datasets").json()["total"]
    response = client.post(
        "/v1/datasets", json={"content_root": new_root(), "uri": "x" * 70_000}, headers=auth
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "this service accepts at most 65536 bytes" in error["message"]
    assert client.get("/v1/datasets").json()["total"] == before


def test_malformed_json_is_422(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/v1/datasets", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON decode error" in response.json()["error"]["message"]


def test_show_unknown_or_malformed_id(client: TestClient, new_root: Callable[[], str]) -> None:
    root = new_root()
    unknown = client.get(f"/v1/datasets/{root}")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "unknown_dataset",
        "message": f"dataset {root} is not registered",
        "details": {"dataset_id": str(int(root, 16))},
    }
    bad = client.get("/v1/datasets/12abc")
    assert bad.status_code == 422
    assert "'12abc' is not a valid dataset id" in bad.json()["error"]["message"]
    zero = client.get("/v1/datasets/0")
    assert zero.status_code == 422
    assert "dataset id 0 does not exist" in zero.json()["error"]["message"]


def test_list_rejects_bad_owner_and_pages(
    client: TestClient, auth: dict[str, str], new_root: Callable[[], str]
) -> None:
    for _ in range(3):
        assert client.post("/v1/datasets", json={"content_root": new_root()}, headers=auth).status_code == 201
    everything = client.get("/v1/datasets").json()
    page = client.get("/v1/datasets", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == everything["total"] >= 3 and page["offset"] == 1
    assert page["items"] == everything["items"][1:3]
    bad = client.get("/v1/datasets", params={"owner": DEV0.lower()[:-1] + "g"})
    assert bad.status_code == 422
    assert "is not an address: expected 0x followed by 40 hex digits" in bad.json()["error"]["message"]
    mixed = DEV0[:2] + DEV0[2:].swapcase()
    bad_checksum = client.get("/v1/datasets", params={"owner": mixed})
    assert bad_checksum.status_code == 422
    assert (
        f"fails its EIP-55 checksum (mixed case); did you mean {DEV0}?"
        in bad_checksum.json()["error"]["message"]
    )
