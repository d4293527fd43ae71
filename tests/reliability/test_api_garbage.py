"""Garbage in, through the HTTP API: every input gets a 4xx with the typed error body and a precise
message, and changes no state (block height, event count and every nonce are unchanged).

The real app over a real anvil (`deployed`), in-process through Starlette's test client; the
service signs with dev3, the owner of the signed-grant tests is dev1. Garbage comes from a seeded
RNG and each test sends a bounded number of requests.
"""

from __future__ import annotations

import copy
import json
import random
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.auth import ApiSettings
from ledger.deploy import save_deployment
from ledger.keys import dev_account
from ledger.settings import Settings
from ledger.signed_grants import grant_typed_data, sign_grant

RNG = random.Random(20261127)
TOKEN = "garbage-token-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OWNER = dev_account(1)
GRANTEE = str(dev_account(2).address)
OPERATOR = dev_account(3)
FAR = 2**40
LIMIT = 64 * 1024
UINT = re.compile(r"^([0-9]{1,78}|0x[0-9a-fA-F]{1,64})$")


def junk_text(size: int, *, forbid: str = "") -> str:
    """`size` random bytes read as Latin-1 text (every byte value is a character)."""
    return "".join(
        c for c in bytes(RNG.getrandbits(8) for _ in range(size)).decode("latin-1") if c not in forbid
    )


def printable_junk(size: int) -> str:
    """Random visible ASCII (what a header value can carry)."""
    return "".join(chr(RNG.randint(0x21, 0x7E)) for _ in range(size))


def shown(value: str) -> str:
    """How the service echoes an offending value: shortened to 80 characters, then repr'd."""
    return repr(value if len(value) <= 80 else value[:80] + "...")


@dataclass
class Api:
    """The app, the chain behind it, and a dataset of dev1's."""

    http: TestClient
    chain: Any
    dataset_id: int

    def state(self) -> tuple[int, int, int, int, int]:
        """Block height, number of events, nonces of the operator and the owner, owner's grant nonce."""
        client = self.chain[0]
        events = client.get_logs(client.deployment.deployed_block)

        def nonce(account: Any) -> int:
            return int(client.transport.request("eth_getTransactionCount", [account.address, "latest"]), 16)

        return (
            client.latest_block().number,
            len(events),
            nonce(OPERATOR),
            nonce(OWNER),
            client.nonces(str(OWNER.address)),
        )

    def signed(self, **changes: Any) -> dict[str, Any]:
        """A grant dev1 signed for dev2 on its dataset (valid until changed)."""
        client = self.chain[1]
        typed = grant_typed_data(
            client.chain_id,
            client.deployment.address("UsageGrants"),
            self.dataset_id,
            GRANTEE,
            "data-mining",
            0,
            FAR,
            client.nonces(str(OWNER.address)),
            FAR,
        )
        document = sign_grant(OWNER, typed)
        document.update(changes)
        return document


@pytest.fixture()
def api(deployed: Any, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", rpc_url=deployed.rpc_url)
    save_deployment(settings, deployed.deployment)
    dataset_id, _ = deployed[1].register_dataset(secrets.token_bytes(32))
    app = create_app(settings, ApiSettings(token=SecretStr(TOKEN), account="dev3", index_sync_interval=0.0))
    with TestClient(app, raise_server_exceptions=False) as http:
        yield Api(http, deployed, dataset_id)


def refused(response: Any, status: int, code: str, message: str | Callable[[str], bool]) -> dict[str, Any]:
    """Assert the typed error body, its status, code and message (exact text or a predicate)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["details"], dict)
    assert error["code"] == code, error
    if callable(message):
        assert message(error["message"]), error["message"]
    else:
        assert error["message"] == message, error["message"]
    assert TOKEN not in response.text
    return error  # type: ignore[no-any-return]


def starting(prefix: str) -> Callable[[str], bool]:
    """A message check: the message begins with `prefix`."""
    return lambda message: message.startswith(prefix)


def garbage_strings(count: int, *, forbid: str = "") -> list[str]:
    """Random texts of random lengths (1..300), none of which happens to be a valid uint256."""
    out: list[str] = []
    while len(out) < count:
        text = junk_text(RNG.randint(1, 300), forbid=forbid)
        if text and not UINT.match(text):
            out.append(text)
    return out


def test_random_bytes_as_cids(api: Api) -> None:
    before = api.state()
    # Random bytes, random base32 of the right length (wrong multihash), a CIDv0, an oversize one.
    cids = garbage_strings(8, forbid="/")
    cids += [
        "b" + "".join(RNG.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(58)) for _ in range(3)
    ]
    cids += ["QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "bafkrei" + "a" * 300]
    for cid in cids:
        response = api.http.get(f"/v1/audit/models/{quote(cid, safe='')}")
        refused(
            response,
            422,
            "invalid_request",
            starting(f"invalid request: path.cid: {shown(cid)} is not"),
        )
        response = api.http.post("/v1/datasets", json={"cid": cid}, headers=AUTH)
        refused(
            response,
            422,
            "invalid_request",
            starting(f"invalid request: cid: {shown(cid)} is not"),
        )
    assert api.state() == before


def test_random_dataset_ids(api: Api) -> None:
    before = api.state()
    query = {"grantee": GRANTEE, "purpose": "ai-training"}
    for text in garbage_strings(10, forbid="/"):
        expected = (
            f"{shown(text)} is not a valid dataset id: "
            "expected a uint256 in decimal or 0x-hex (at most 64 hex digits)"
        )
        response = api.http.get(f"/v1/datasets/{quote(text, safe='')}")
        refused(response, 422, "invalid_request", f"invalid request: path.dataset_id: {expected}")
        response = api.http.get("/v1/grants/check", params={**query, "dataset_id": text})
        refused(response, 422, "invalid_request", f"invalid request: query.dataset_id: {expected}")
        body = {**query, "dataset_id": text, "expires_at": FAR}
        response = api.http.post("/v1/grants", json=body, headers=AUTH)
        refused(response, 422, "invalid_request", f"invalid request: dataset_id: {expected}")
    # Well-formed but out of range, zero, or not a string at all.
    for value, expected in [
        ("0", "dataset id 0 does not exist: ids are non-zero uint256 values"),
        (str(2**256), f"dataset id {2**256} is outside 0..2**256-1"),
        ("0x" + "f" * 65, f"{shown('0x' + 'f' * 65)} is not a valid dataset id"),
        (1.5, "'1.5' is not a valid dataset id"),
        ([1], "'[1]' is not a valid dataset id"),
    ]:
        body = {**query, "dataset_id": value, "expires_at": FAR}
        response = api.http.post("/v1/grants/revoke", json={**query, "dataset_id": value}, headers=AUTH)
        refused(
            response,
            422,
            "invalid_request",
            starting(f"invalid request: dataset_id: {expected}"),
        )
        response = api.http.post("/v1/grants", json=body, headers=AUTH)
        refused(
            response,
            422,
            "invalid_request",
            starting(f"invalid request: dataset_id: {expected}"),
        )
    # Valid ids nobody registered: the write is refused naming the id, the read says so.
    for _ in range(3):
        unknown = int.from_bytes(secrets.token_bytes(32), "big") | 1
        body = {**query, "dataset_id": str(unknown), "expires_at": FAR}
        response = api.http.post("/v1/grants", json=body, headers=AUTH)
        refused(response, 404, "unknown_dataset", f"dataset 0x{unknown:064x} is not registered")
        check = api.http.get("/v1/grants/check", params={**query, "dataset_id": str(unknown)})
        assert check.status_code == 200, check.text
        assert (check.json()["authorized"], check.json()["reason"]) == (
            False,
            "the dataset is not registered",
        )
    assert api.state() == before


def test_random_addresses(api: Api) -> None:
    before = api.state()
    real = str(dev_account(2).address)
    # One letter's case flipped: the EIP-55 checksum fails and the message offers the right one.
    letter = next(i for i, c in enumerate(real) if i > 1 and c.isalpha())
    flipped = real[:letter] + real[letter].swapcase() + real[letter + 1 :]
    cases = [
        (text, f"{shown(text)} is not an address: expected 0x followed by 40 hex digits")
        for text in garbage_strings(8)
    ]
    cases += [
        (t, f"{shown(t)} is not an address: expected 0x followed by 40 hex digits")
        for t in ("0x" + "1" * 39, "0x" + "1" * 41, real[2:], "0X" + real[2:], real + " ")
    ]
    cases.append((flipped, f"{flipped!r} fails its EIP-55 checksum (mixed case); did you mean {real}?"))
    for text, expected in cases:
        params = {"dataset_id": str(api.dataset_id), "grantee": text, "purpose": "ai-training"}
        response = api.http.get("/v1/grants/check", params=params)
        refused(response, 422, "invalid_request", f"invalid request: query.grantee: {expected}")
        response = api.http.post("/v1/grants", json={**params, "expires_at": FAR}, headers=AUTH)
        refused(response, 422, "invalid_request", f"invalid request: grantee: {expected}")
        response = api.http.get("/v1/datasets", params={"owner": text})
        refused(response, 422, "invalid_request", f"invalid request: query.owner: {expected}")
    assert api.state() == before


def test_garbage_signatures_and_signed_grant_bodies(api: Api) -> None:
    before = api.state()
    # Signatures of the right shape that do not verify: random bytes, another signer, a tampered message.
    forged = [
        api.signed(signature="0x" + bytes(RNG.getrandbits(8) for _ in range(65)).hex()) for _ in range(4)
    ]
    forged.append(api.signed(signature="0x" + "ab" * 64))  # an EIP-2098 compact shape
    other = sign_grant(dev_account(2), {k: v for k, v in api.signed().items() if k != "signature"})
    tampered = api.signed()
    tampered["message"]["expiresAt"] = FAR + 1
    for document in [*forged, other, tampered]:
        response = api.http.post("/v1/grants/redeem", json=document, headers=AUTH)
        error = refused(
            response,
            422,
            "usage_grants_invalid_signature",
            starting(
                f"redeem signed grant: the signature is not that of {OWNER.address}, "
                f"the owner of dataset 0x{api.dataset_id:064x}"
            ),
        )
        assert error["details"]["revert"] == "UsageGrantsInvalidSignature"
    # Signatures of the wrong shape for an account owner (65 bytes, or 64 in EIP-2098 form).
    unsigned = "the document has no 0x-hex `signature`; sign it first (`sov grant sign`)"
    lengths = "an account (EOA) owner's signature is 65 bytes (r, s, v) or 64 bytes (EIP-2098 compact)"
    for signature, expected in [
        ("", unsigned),
        ("0x", f"`signature` is 0 bytes; {lengths}"),
        ("0x12", f"`signature` is 1 bytes; {lengths}"),
        ("0x" + "zz" * 65, "`signature` is not hex (an even number of 0-9a-f digits after 0x)"),
        ("0x" + "ab" * 66, f"`signature` is 66 bytes; {lengths}"),
        (junk_text(40), unsigned),
    ]:
        response = api.http.post("/v1/grants/redeem", json=api.signed(signature=signature), headers=AUTH)
        error = refused(response, 422, "invalid_request", f"invalid request: {expected}")
        assert [f["field"] for f in error["details"]["fields"]] == ["signature"]
    # Random mutations of a valid body: a field replaced by garbage, removed, or an unknown one added.
    garbage_values: list[Any] = [None, -1, 2**300, 1.5, True, [], {}, "", junk_text(20), {"x": [1]}]
    valid = api.signed()
    for _ in range(25):
        document = copy.deepcopy(valid)
        section = RNG.choice(["message", "domain", None])
        target = document[section] if section else document
        field = RNG.choice(sorted(target))
        action = RNG.choice(["replace", "delete", "add"])
        if action == "replace":
            target[field] = RNG.choice(garbage_values)
        elif action == "delete":
            del target[field]
        else:
            field = "x" + junk_text(6, forbid=".")
            target[field] = 1
        where = f"{section}.{field}" if section else field
        response = api.http.post("/v1/grants/redeem", json=document, headers=AUTH)
        error = refused(response, 422, "invalid_request", lambda m: len(m) > 20)
        # Named by the validator (every offending field listed) or by the EIP-712 decoder behind it.
        named = [f["field"] for f in error["details"].get("fields", [])] or [error["message"].split(" ")[0]]
        assert any(n == where or n.startswith(where + ".") for n in named), (action, where, error)
    assert api.state() == before
    # None of it consumed the owner's nonce: the untouched grant still redeems.
    response = api.http.post("/v1/grants/redeem", json=valid, headers=AUTH)
    assert response.status_code == 201, response.text
    assert api.chain[0].is_authorized(api.dataset_id, GRANTEE, "data-mining")


def test_non_json_bodies_wrong_content_types_and_oversized_bodies(api: Api) -> None:
    before = api.state()
    paths = ["/v1/datasets", "/v1/grants", "/v1/grants/revoke", "/v1/grants/redeem"]
    json_headers = {**AUTH, "Content-Type": "application/json"}
    for _ in range(12):
        raw = bytes(RNG.getrandbits(8) for _ in range(RNG.randint(1, 400)))
        path = RNG.choice(paths)
        response = api.http.post(path, content=raw, headers=json_headers)
        try:
            json.loads(raw)
        except json.JSONDecodeError as exc:
            expected = f"request body is not valid JSON (JSON decode error at character {exc.pos}): {exc.msg}"
        except UnicodeDecodeError as exc:
            expected = (
                f"request body is not valid JSON (JSON decode error at byte {exc.start}): "
                f"not {exc.encoding.upper()} text"
            )
        refused(response, 422, "invalid_json", expected)
    # Truncated and almost-JSON documents.
    for raw, expected in [
        (b'{"dataset_id": "1"', "at character 18): Expecting ',' delimiter"),
        (b"{'dataset_id': 1}", "at character 1): Expecting property name enclosed in double quotes"),
        (b'{"a": NaN', "at character 9): Expecting ',' delimiter"),
    ]:
        response = api.http.post("/v1/grants", content=raw, headers=json_headers)
        refused(
            response, 422, "invalid_json", f"request body is not valid JSON (JSON decode error {expected}"
        )
    # JSON that is not an object.
    for document in ([1, 2], "grant", 7):
        response = api.http.post("/v1/grants", json=document, headers=AUTH)
        expected = (
            "invalid request: request: Input should be a valid dictionary or object to extract fields from"
        )
        refused(response, 422, "invalid_request", expected)
    response = api.http.post("/v1/grants", json=None, headers=AUTH)
    refused(response, 422, "invalid_request", "invalid request: request: Field required")
    # A valid body under the wrong content type is refused as such (not as a missing field).
    valid = json.dumps(
        {"dataset_id": str(api.dataset_id), "grantee": GRANTEE, "purpose": "analytics", "expires_at": FAR}
    )
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "image/png",
        printable_junk(40),
    ]:
        response = api.http.post(
            "/v1/grants", content=valid.encode(), headers={**AUTH, "Content-Type": content_type}
        )
        told = content_type[:80]
        refused(
            response,
            415,
            "unsupported_media_type",
            f"request body sent with Content-Type {told!r}; "
            "this API accepts only JSON bodies (application/json)",
        )
    response = api.http.post("/v1/grants", content=valid.encode(), headers=AUTH)
    refused(
        response,
        415,
        "unsupported_media_type",
        "request body sent with no Content-Type; this API accepts only JSON bodies (application/json)",
    )
    # Oversized: declared (refused unread) and chunked (refused once past the limit).
    for size in (LIMIT + 1, 10 * LIMIT):
        response = api.http.post("/v1/grants", content=b" " * size, headers=json_headers)
        refused(
            response,
            422,
            "payload_too_large",
            f"request body is {size} bytes; this service accepts at most {LIMIT} bytes",
        )

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    response = api.http.post("/v1/grants", content=chunks(), headers=json_headers)
    refused(
        response,
        422,
        "payload_too_large",
        f"request body is more than {LIMIT} bytes; this service accepts at most {LIMIT} bytes",
    )
    assert api.state() == before
