"""The EIP-4361 grammar as `api.siwe` reads and writes it: every field, and each refusal by line."""

from __future__ import annotations

import pytest
from eth_account import Account

from api.siwe import (
    SiweFormatError,
    SiweMessage,
    parse_message,
    personal_message_hash,
    recover_signer,
    sign_message,
)

ADDRESS = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"

FULL = """https://ledger.example.org:8443 wants you to sign in with your Ethereum account:
0x90F79bf6EB2c4f870365E785982E1f101E93b906

Read the datasets this lab holds grants for.

URI: https://ledger.example.org:8443/login
Version: 1
Chain ID: 11155111
Nonce: 32891756aBcD
Issued At: 2026-12-02T10:00:00.123Z
Expiration Time: 2026-12-02T10:15:00+01:00
Not Before: 2026-12-02T09:59:00Z
Request ID: req-7/a?b=c
Resources:
- ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
- https://ledger.example.org:8443/v1/datasets"""


def test_every_field_is_read_and_written_back_byte_for_byte() -> None:
    message = parse_message(FULL)
    assert message.scheme == "https" and message.domain == "ledger.example.org:8443"
    assert message.address == ADDRESS and message.statement == "Read the datasets this lab holds grants for."
    assert (message.chain_id, message.nonce, message.version) == (11155111, "32891756aBcD", "1")
    assert message.issued_at == "2026-12-02T10:00:00.123Z"
    assert (
        message.expiration_time == "2026-12-02T10:15:00+01:00"
        and message.not_before == "2026-12-02T09:59:00Z"
    )
    assert message.request_id == "req-7/a?b=c" and len(message.resources) == 2
    assert message.to_text() == FULL


def test_a_message_without_statement_or_options_round_trips() -> None:
    message = SiweMessage(
        domain="127.0.0.1:8000",
        address=ADDRESS,
        uri="http://127.0.0.1:8000/",
        chain_id=31337,
        nonce="abcdefgh",
        issued_at="2026-12-02T10:00:00Z",
    )
    text = message.to_text()
    assert text.split("\n")[:5] == [
        "127.0.0.1:8000 wants you to sign in with your Ethereum account:",
        ADDRESS,
        "",
        "",
        "URI: http://127.0.0.1:8000/",
    ]
    assert parse_message(text) == message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("https://ledger", "1https://ledger"),
            "line 1: scheme '1https' is not a URI scheme",
        ),
        (lambda t: t.replace("ledger.example.org:8443 wants", "ledger example wants"), "line 1: domain "),
        (
            lambda t: t.replace(ADDRESS, ADDRESS[:-1]),
            "line 2: '0x90F79bf6EB2c4f870365E785982E1f101E93b90' is not",
        ),
        (lambda t: t.replace("\n\nRead", "\nRead"), "line 3: expected an empty line"),
        (
            lambda t: t.replace("for.\n\nURI", "for.\nURI"),
            "line 5: expected an empty line after the statement",
        ),
        (
            lambda t: t.replace("Version: 1\nChain ID: 11155111", "Chain ID: 11155111\nVersion: 1"),
            "line 7: expected 'Version: ",
        ),
        (
            lambda t: t.replace("Nonce: 32891756aBcD", "Nonce: short"),
            "line 9: Nonce 'short' is not a valid nonce",
        ),
        (
            lambda t: t.replace("Chain ID: 11155111", "Chain ID: 0x1"),
            "line 8: Chain ID '0x1' is not a valid chain id",
        ),
        (
            lambda t: t.replace("2026-12-02T10:00:00.123Z", "2026-13-02T10:00:00Z"),
            "Issued At '2026-13-02T10:00:00Z' is not a valid",
        ),
        (
            lambda t: t.replace("2026-12-02T10:00:00.123Z", "2026-12-02 10:00:00Z"),
            "line 10: Issued At '2026-12-02 10:00:00Z' is not",
        ),
        (
            lambda t: (
                t.replace("Not Before: 2026-12-02T09:59:00Z\n", "") + "\nNot Before: 2026-12-02T09:59:00Z"
            ),
            "line 16: unexpected 'Not Before: ",
        ),
        (lambda t: t.replace("- ipfs://", "- not a uri "), "line 15: resource 'not a uri "),
        (
            lambda t: t.split("\nURI:")[0],
            "line 6: expected 'URI: <URI with a scheme>', the message ends before it",
        ),
    ],
)
def test_each_departure_from_the_grammar_is_named_by_line(edit: object, expected: str) -> None:
    with pytest.raises(SiweFormatError) as refused:
        parse_message(edit(FULL))  # type: ignore[operator]
    assert str(refused.value).startswith(expected), str(refused.value)


def test_the_signer_is_recovered_and_other_signatures_refused() -> None:
    account = Account.create()
    text = SiweMessage(
        domain="a.example",
        address=account.address,
        uri="https://a.example/",
        chain_id=1,
        nonce="n" * 8,
        issued_at="2026-12-02T10:00:00Z",
    ).to_text()
    signature = bytes.fromhex(sign_message(account, text)[2:])
    assert recover_signer(text, signature) == account.address
    assert recover_signer(text + " ", signature) != account.address
    with pytest.raises(ValueError, match="the signature is 64 bytes; an EOA signature is 65 bytes"):
        recover_signer(text, signature[:64])
    assert len(personal_message_hash(text)) == 32
