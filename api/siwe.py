"""Sign-In with Ethereum (EIP-4361) messages: build, parse strictly, and recover their signer.

The PyPI `siwe` package (4.4) and its successor `signinwithethereum` (5.0) both require
eth-account < 0.14, and this project pins 0.14 (web3 8), so the message grammar of EIP-4361 is
implemented here, line by line, and the signature is checked with eth_account's EIP-191
recovery. Parsing refuses anything the grammar does not allow (CR line ends, a lower-case
address, a missing field, fields out of order, an unknown trailing line), naming the line.

What the fields must equal (domain, URI origin, chain id, the nonce, the time window) is the
caller's policy: `api.access_tokens` checks them against the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from eth_utils.address import is_checksum_address, to_checksum_address

PREAMBLE = " wants you to sign in with your Ethereum account:"

# RFC 3986 authority (userinfo@host:port) and a URI with a scheme, as EIP-4361 asks; generous in
# the characters it allows inside, strict about the shape and about whitespace.
_AUTHORITY = re.compile(
    r"^(?:[A-Za-z0-9\-._~%!$&'()*+,;=:]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+)(?::\d+)?$"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,}$")
_CHAIN_ID = re.compile(r"^[1-9][0-9]*$")
# RFC 3339 date-time (the profile of ISO 8601 that EIP-4361 names).
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*$")
_STATEMENT = re.compile(r"^[^\n\r]+$")


class SiweFormatError(ValueError):
    """The text is not an EIP-4361 message; the message names the line and what was expected."""


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message (times as RFC 3339 text, exactly as signed)."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    version: str = "1"
    statement: str | None = None
    scheme: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default_factory=tuple)

    def to_text(self) -> str:
        """The message as the wallet shows it and signs it (EIP-4361 layout, LF line ends)."""
        head = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [head + PREAMBLE, self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines.append("")
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)


def parse_time(text: str, what: str) -> float:
    """An RFC 3339 date-time as unix seconds, or `SiweFormatError` naming the field."""
    if not _DATETIME.match(text):
        raise SiweFormatError(f"{what} {text!r} is not an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T")).timestamp()
    except ValueError as error:
        raise SiweFormatError(f"{what} {text!r} is not a valid date-time: {error}") from None


def _field(lines: list[str], index: int, label: str, pattern: re.Pattern[str], what: str) -> str:
    prefix = f"{label}: "
    if index >= len(lines):
        raise SiweFormatError(f"line {index + 1}: expected '{prefix}<{what}>', the message ends before it")
    line = lines[index]
    if not line.startswith(prefix):
        raise SiweFormatError(f"line {index + 1}: expected '{prefix}<{what}>', found {line[:60]!r}")
    value = line[len(prefix) :]
    if not pattern.match(value):
        raise SiweFormatError(f"line {index + 1}: {label} {value[:80]!r} is not a valid {what}")
    return value


def _optional(lines: list[str], index: int, label: str) -> bool:
    return index < len(lines) and lines[index].startswith(f"{label}: ")


def parse_message(text: str) -> SiweMessage:
    """The fields of `text`, which must follow the EIP-4361 grammar exactly."""
    if "\r" in text:
        raise SiweFormatError("the message has a CR character: EIP-4361 lines end with LF only")
    lines = text.split("\n")
    first = lines[0]
    if not first.endswith(PREAMBLE):
        raise SiweFormatError(f"line 1: expected '<domain>{PREAMBLE}', found {first[:80]!r}")
    origin = first[: -len(PREAMBLE)]
    scheme: str | None = None
    if "://" in origin:
        scheme, origin = origin.split("://", 1)
        if not _SCHEME.match(scheme):
            raise SiweFormatError(f"line 1: scheme {scheme!r} is not a URI scheme")
    if not _AUTHORITY.match(origin):
        raise SiweFormatError(f"line 1: domain {origin[:80]!r} is not an RFC 3986 authority (host[:port])")
    if len(lines) < 4:
        raise SiweFormatError("the message ends after line 1: expected the address, a blank line and the URI")
    address = lines[1]
    if not _ADDRESS.match(address):
        raise SiweFormatError(f"line 2: {address[:60]!r} is not a 0x address of 40 hex digits")
    if not is_checksum_address(address):
        raise SiweFormatError(
            f"line 2: address {address} is not in EIP-55 mixed case (expected {to_checksum_address(address)})"
        )
    if lines[2] != "":
        raise SiweFormatError(f"line 3: expected an empty line, found {lines[2][:60]!r}")
    statement: str | None = None
    index = 3
    if lines[3] != "":
        if lines[3].startswith("URI: "):
            raise SiweFormatError("line 4: expected a statement or an empty line before 'URI: '")
        if not _STATEMENT.match(lines[3]):
            raise SiweFormatError("line 4: the statement is not one line of text")
        statement = lines[3]
        if len(lines) < 5 or lines[4] != "":
            raise SiweFormatError("line 5: expected an empty line after the statement")
        index = 5
    else:
        index = 4
    uri = _field(lines, index, "URI", _URI, "URI with a scheme")
    version = _field(lines, index + 1, "Version", re.compile(r"^1$"), "version (only 1 exists)")
    chain_text = _field(lines, index + 2, "Chain ID", _CHAIN_ID, "chain id (a positive integer)")
    nonce = _field(lines, index + 3, "Nonce", _NONCE, "nonce (at least 8 letters or digits)")
    issued_at = _field(lines, index + 4, "Issued At", _DATETIME, "RFC 3339 date-time")
    parse_time(issued_at, "Issued At")
    index += 5
    expiration_time = not_before = request_id = None
    if _optional(lines, index, "Expiration Time"):
        expiration_time = _field(lines, index, "Expiration Time", _DATETIME, "RFC 3339 date-time")
        parse_time(expiration_time, "Expiration Time")
        index += 1
    if _optional(lines, index, "Not Before"):
        not_before = _field(lines, index, "Not Before", _DATETIME, "RFC 3339 date-time")
        parse_time(not_before, "Not Before")
        index += 1
    if _optional(lines, index, "Request ID"):
        request_id = _field(lines, index, "Request ID", _REQUEST_ID, "request id")
        index += 1
    resources: list[str] = []
    if index < len(lines) and lines[index] == "Resources:":
        index += 1
        while index < len(lines) and lines[index].startswith("- "):
            resource = lines[index][2:]
            if not _URI.match(resource):
                raise SiweFormatError(f"line {index + 1}: resource {resource[:80]!r} is not a URI")
            resources.append(resource)
            index += 1
    if index < len(lines):
        raise SiweFormatError(
            f"line {index + 1}: unexpected {lines[index][:60]!r} (fields are in EIP-4361 order and "
            "the message has no trailing newline)"
        )
    return SiweMessage(
        domain=origin,
        address=address,
        uri=uri,
        chain_id=int(chain_text),
        nonce=nonce,
        issued_at=issued_at,
        version=version,
        statement=statement,
        scheme=scheme,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
    )


def personal_message_hash(text: str) -> bytes:
    """The EIP-191 (version 0x45) hash `personal_sign` signs, which an EIP-1271 wallet is asked about."""
    from eth_utils.crypto import keccak

    raw = text.encode()
    return bytes(keccak(b"\x19Ethereum Signed Message:\n" + str(len(raw)).encode() + raw))


def recover_signer(text: str, signature: bytes) -> str:
    """The address whose EIP-191 `personal_sign` of `text` is `signature` (ValueError if none)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    if len(signature) != 65:
        raise ValueError(f"the signature is {len(signature)} bytes; an EOA signature is 65 bytes (r, s, v)")
    try:
        return str(Account.recover_message(encode_defunct(text=text), signature=signature))
    except Exception as error:  # eth_keys raises BadSignature / ValueError for an invalid (r, s, v)
        raise ValueError(f"the signature does not recover a key: {error}") from None


def sign_message(account: object, text: str) -> str:
    """0x-hex EIP-191 signature of `text` by a `LocalAccount` (what `personal_sign` returns)."""
    from eth_account.messages import encode_defunct

    signed = account.sign_message(encode_defunct(text=text))  # type: ignore[attr-defined]
    return "0x" + bytes(signed.signature).hex()
