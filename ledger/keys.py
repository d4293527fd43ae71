"""Accounts by alias: encrypted keystore files, and the ten well-known devnet accounts.

Keystore files are Web3 Secret Storage (eth-keyfile) JSON under `settings.keystore_dir`,
one `<alias>.json` each. `dev0`..`dev9` are derived from anvil's (and hardhat's) default
mnemonic and exist only for devnets (chain id 31337): their keys are public knowledge.
Private keys are never logged or printed.

`Keystore.account(alias, chain_id=...)` is the one way the CLI, the API and the nodes load
a signing account: the chain id is required, so no caller can forget to say which chain the
key will sign for, and `devN` is refused on every chain but the devnet. `dev_account` is the
raw derivation, for code that has itself started (or checked it talks to) a devnet.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json

from ledger.errors import (
    AccountExistsError,
    ConfigurationError,
    KeystoreError,
    UnknownAccountError,
    WrongPasswordError,
)
from ledger.settings import Settings

DEVNET_CHAIN_ID = 31337
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
DEV_ALIASES: tuple[str, ...] = tuple(f"dev{i}" for i in range(DEV_ACCOUNT_COUNT))
PASSWORD_ENV = "SOV_KEY_PASSWORD"
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DevAccountOffDevnetError(ConfigurationError, PermissionError):
    """A `devN` alias (a publicly known key) was asked to sign on a chain that is not a devnet."""

    def __init__(self, alias: str, chain_id: int) -> None:
        super().__init__(
            f"{alias} is a devnet account with a publicly known key; chain {chain_id} is not a devnet "
            f"(chain id {DEVNET_CHAIN_ID}), so anyone could sign as it there. Use an account from your "
            "keystore (`sov account create ALIAS`)"
        )
        self.alias = alias
        self.chain_id = chain_id


_dev_cache: dict[int, LocalAccount] = {}
_dev_lock = threading.Lock()


def dev_account(index: int) -> LocalAccount:
    """Devnet account `index` (m/44'/60'/0'/0/index of the default test mnemonic)."""
    if not 0 <= index < DEV_ACCOUNT_COUNT:
        raise UnknownAccountError(f"dev accounts are dev0..dev{DEV_ACCOUNT_COUNT - 1}, not dev{index}")
    with _dev_lock:
        if index not in _dev_cache:
            Account.enable_unaudited_hdwallet_features()
            _dev_cache[index] = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        return _dev_cache[index]


def _dev_addresses() -> frozenset[str]:
    return frozenset(str(dev_account(i).address) for i in range(DEV_ACCOUNT_COUNT))


class Keystore:
    """Named accounts of one user (`settings.keystore_dir`) plus the devnet accounts."""

    def __init__(self, settings: Settings, password: str | None = None) -> None:
        self.directory = settings.keystore_dir
        # SOV_KEY_PASSWORD is read here, at the edge, and only as a default for `password`.
        self._default_password = password if password is not None else os.environ.get(PASSWORD_ENV)

    def _path(self, alias: str) -> Path:
        if not _ALIAS_RE.match(alias):
            raise KeystoreError(
                f"alias {alias!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit"
            )
        return self.directory / f"{alias}.json"

    def _password(self, password: str | None, alias: str) -> str:
        chosen = password if password is not None else self._default_password
        if chosen is None:
            raise KeystoreError(f"a password is needed for account {alias!r}: pass one or set {PASSWORD_ENV}")
        return chosen

    def aliases(self) -> list[str]:
        """Aliases with a keystore file, sorted, followed by `dev0`..`dev9`."""
        stored = sorted(p.stem for p in self.directory.glob("*.json")) if self.directory.is_dir() else []
        return stored + [a for a in DEV_ALIASES if a not in stored]

    def address(self, alias: str) -> str:
        """The address of `alias` without decrypting anything."""
        if alias in DEV_ALIASES and not self._path(alias).exists():
            return str(dev_account(int(alias[3:])).address)
        raw = self._read(alias)
        return "0x" + str(raw["address"]).removeprefix("0x")

    def _read(self, alias: str) -> dict[str, Any]:
        path = self._path(alias)
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            known = self.aliases()
            closest = difflib.get_close_matches(alias, known, n=1)
            hint = f" (did you mean {closest[0]!r}?)" if closest else ""
            raise UnknownAccountError(
                f"no account {alias!r}{hint}; known accounts: {', '.join(known)}. "
                "Create one with `sov account create ALIAS`"
            ) from None
        except ValueError as error:
            raise KeystoreError(f"keystore file {path} is not valid JSON: {error}") from None
        return raw

    def account(self, alias: str, password: str | None = None, *, chain_id: int) -> LocalAccount:
        """The account that signs as `alias` on chain `chain_id` (read it from the node first).

        `devN` aliases without a keystore file are the devnet accounts; on any chain but a
        devnet (31337) they raise `DevAccountOffDevnetError`: their keys are public, so
        anything they signed there would prove nothing and their funds would be anyone's.
        """
        if alias in DEV_ALIASES and not self._path(alias).exists():
            if chain_id != DEVNET_CHAIN_ID:
                raise DevAccountOffDevnetError(alias, chain_id)
            return dev_account(int(alias[3:]))
        raw = self._read(alias)
        secret = self._password(password, alias)
        try:
            key = decode_keyfile_json(raw, secret.encode())
        except ValueError:
            raise WrongPasswordError(f"the password does not decrypt account {alias!r}") from None
        account: LocalAccount = Account.from_key(key)
        if chain_id != DEVNET_CHAIN_ID and account.address in _dev_addresses():
            # A devnet key imported into a keystore file is still public.
            raise DevAccountOffDevnetError(alias, chain_id)
        return account

    def create(
        self,
        alias: str,
        password: str | None = None,
        *,
        private_key: bytes | None = None,
        kdf: Literal["pbkdf2", "scrypt"] = "scrypt",
        iterations: int | None = None,
    ) -> str:
        """Create (or import, with `private_key`) an encrypted account; returns its address.

        Never overwrites an existing alias. `kdf`/`iterations` are eth-keyfile's (scrypt by default).
        """
        path = self._path(alias)
        if path.exists():
            raise AccountExistsError(f"account {alias!r} already exists at {path}; choose another alias")
        secret = self._password(password, alias)
        key = private_key if private_key is not None else bytes(Account.create().key)
        keyfile = create_keyfile_json(key, secret.encode(), kdf=kdf, iterations=iterations)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create with owner-only permissions from the start; O_EXCL refuses a racing creator.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise AccountExistsError(
                f"account {alias!r} already exists at {path}; choose another alias"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(keyfile, handle)
        return str(Account.from_key(key).address)
