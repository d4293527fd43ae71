"""Keystore: encrypted files by alias, the devnet accounts, and keys that never leak."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from ledger.errors import (
    AccountExistsError,
    ConfigurationError,
    KeystoreError,
    UnknownAccountError,
    WrongPasswordError,
)
from ledger.keys import DEV_ALIASES, Keystore, dev_account
from ledger.settings import Settings
from tests.conftest import DeployedChain
from tests.ledger.conftest import rpc

FAST = {"kdf": "pbkdf2", "iterations": 2}  # the default scrypt is deliberately slow


def test_dev_accounts_are_the_nodes_accounts(deployed: DeployedChain, sov_settings: Settings) -> None:
    node_accounts = rpc(deployed, "eth_accounts")
    keystore = Keystore(sov_settings)
    assert [keystore.account(a, chain_id=31337).address.lower() for a in DEV_ALIASES] == [
        a.lower() for a in node_accounts
    ]
    assert keystore.address("dev3") == dev_account(3).address
    assert not sov_settings.keystore_dir.exists()  # no files needed


def test_dev_accounts_refused_off_devnet(sov_settings: Settings) -> None:
    with pytest.raises(
        ConfigurationError, match="dev0 is a devnet account with a publicly known key; chain 1"
    ):
        Keystore(sov_settings).account("dev0", chain_id=1)


def test_create_and_unlock(sov_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    keystore = Keystore(sov_settings)
    with caplog.at_level(logging.DEBUG):
        address = keystore.create("hospital-a", "s3cret", **FAST)  # type: ignore[arg-type]
        account = keystore.account("hospital-a", "s3cret", chain_id=1)
    assert account.address == address
    assert keystore.address("hospital-a") == address
    assert keystore.aliases()[0] == "hospital-a" and keystore.aliases()[1:] == list(DEV_ALIASES)
    path = sov_settings.keystore_dir / "hospital-a.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_hex = bytes(account.key).hex()
    assert key_hex not in path.read_text()
    assert key_hex not in caplog.text and key_hex not in repr(keystore)
    assert json.loads(path.read_text())["crypto"]["kdf"] == "pbkdf2"


def test_default_scrypt_keystore_and_password_from_env(
    sov_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOV_KEY_PASSWORD", "from-env")
    keystore = Keystore(sov_settings)
    key = bytes.fromhex("11" * 32)
    address = keystore.create("imported", private_key=key)
    assert json.loads((sov_settings.keystore_dir / "imported.json").read_text())["crypto"]["kdf"] == "scrypt"
    assert Keystore(sov_settings).account("imported", chain_id=1).address == address
    assert bytes(Keystore(sov_settings).account("imported", chain_id=1).key) == key


def test_wrong_password_changes_nothing(sov_settings: Settings) -> None:
    keystore = Keystore(sov_settings)
    keystore.create("lab", "right", **FAST)  # type: ignore[arg-type]
    before = (sov_settings.keystore_dir / "lab.json").read_bytes()
    with pytest.raises(WrongPasswordError, match="the password does not decrypt account 'lab'") as caught:
        keystore.account("lab", "wrong", chain_id=1)
    assert isinstance(caught.value, PermissionError)
    assert (sov_settings.keystore_dir / "lab.json").read_bytes() == before


def test_existing_alias_is_never_overwritten(sov_settings: Settings) -> None:
    keystore = Keystore(sov_settings)
    address = keystore.create("lab", "pw", **FAST)  # type: ignore[arg-type]
    before = (sov_settings.keystore_dir / "lab.json").read_bytes()
    with pytest.raises(AccountExistsError, match="account 'lab' already exists"):
        keystore.create("lab", "pw", **FAST)  # type: ignore[arg-type]
    assert (sov_settings.keystore_dir / "lab.json").read_bytes() == before
    assert keystore.account("lab", "pw", chain_id=1).address == address


def test_unknown_alias_suggests_the_closest(sov_settings: Settings) -> None:
    keystore = Keystore(sov_settings)
    keystore.create("hospital-a", "pw", **FAST)  # type: ignore[arg-type]
    with pytest.raises(
        UnknownAccountError, match="no account 'hospital-b' \\(did you mean 'hospital-a'\\?\\)"
    ):
        keystore.account("hospital-b", "pw", chain_id=1)
    with pytest.raises(KeystoreError, match=r"alias '\.\./x' is not valid"):
        keystore.create("../x", "pw")
    with pytest.raises(KeystoreError, match="a password is needed for account 'nopw'"):
        Keystore(sov_settings, password=None).create("nopw") if False else keystore.create("nopw")
    assert sorted(p.name for p in sov_settings.keystore_dir.iterdir()) == ["hospital-a.json"]
