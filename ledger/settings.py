"""One typed settings object for everything `ledger` reads from the environment.

Values come from `SOV_*` environment variables, then from `$SOV_HOME/config.toml` when
present (`sov network join` writes the network's RPC URL there), then the defaults; code
receives a `Settings` instance and never reads the environment itself.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ledger.errors import ConfigurationError

CONFIG_FILE = "config.toml"

# What config.toml may set: the home itself comes from SOV_HOME (the file lives inside it).
CONFIG_KEYS = frozenset({"rpc_url", "devnet_port", "store", "ipfs_api_url"})


def default_home() -> Path:
    """The data directory used when `SOV_HOME` is not set."""
    return Path.home() / ".sovereign-ledger"


def config_path(home: Path) -> Path:
    """`<home>/config.toml`."""
    return home / CONFIG_FILE


def read_config(home: Path) -> dict[str, Any]:
    """The values of `<home>/config.toml` ({} when there is none); unknown keys are refused."""
    path = config_path(home)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path} is not valid TOML ({error}); fix or delete it") from None
    unknown = sorted(set(values) - CONFIG_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{path} sets {', '.join(unknown)}, which it cannot set; "
            f"valid keys are {', '.join(sorted(CONFIG_KEYS))}"
        )
    return values


def write_config(home: Path, **values: str | int | None) -> Path:
    """Sets (or, with None, removes) keys of `<home>/config.toml`, keeping the others; atomic."""
    unknown = sorted(set(values) - CONFIG_KEYS)
    if unknown:
        raise ConfigurationError(f"config.toml cannot set {', '.join(unknown)}")
    current = read_config(home)
    for key, value in values.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    path = config_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {_toml_value(current[key])}\n" for key in sorted(current)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# written by sov (network join); SOV_* environment variables take precedence\n" + "".join(lines)
    )
    tmp.replace(path)
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class HomeConfigSource(PydanticBaseSettingsSource):
    """`$SOV_HOME/config.toml`, below the environment and the constructor's arguments."""

    def __init__(
        self, settings_cls: type[BaseSettings], init: InitSettingsSource, env: EnvSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self._init = init
        self._env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: `__call__` reads the whole file at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        home = self._init().get("home") or self._env().get("home") or os.environ.get("SOV_HOME")
        return read_config(Path(home) if home else default_home())


class Settings(BaseSettings):
    """Where a user's state lives and which chain and content store to talk to."""

    model_config = SettingsConfigDict(env_prefix="SOV_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="data directory (SOV_HOME)")
    rpc_url: str | None = Field(
        default=None,
        description="JSON-RPC endpoint (http(s):// or an IPC path); unset = embedded anvil devnet",
    )
    devnet_port: int = Field(default=8545, description="port of the embedded anvil devnet on 127.0.0.1")
    store: Literal["local", "kubo"] = Field(default="local", description="content store backend")
    ipfs_api_url: str = Field(default="http://127.0.0.1:5001", description="Kubo RPC API base URL")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructor arguments, then `SOV_*` variables, then `$SOV_HOME/config.toml`."""
        assert isinstance(init_settings, InitSettingsSource) and isinstance(env_settings, EnvSettingsSource)
        return (init_settings, env_settings, HomeConfigSource(settings_cls, init_settings, env_settings))

    @property
    def config_path(self) -> Path:
        """`$SOV_HOME/config.toml`: what `sov network join` remembers (the network's RPC URL)."""
        return config_path(self.home)

    @property
    def devnet_dir(self) -> Path:
        """Embedded devnet state and logs."""
        return self.home / "devnet"

    @property
    def keystore_dir(self) -> Path:
        """Encrypted keystore files, one per alias."""
        return self.home / "keystore"

    @property
    def deployments_dir(self) -> Path:
        """Deployment manifests, one per chain id."""
        return self.home / "deployments"

    @property
    def index_path(self) -> Path:
        """SQLite event index."""
        return self.home / "index.sqlite"

    @property
    def blockstore_dir(self) -> Path:
        """Local content store blocks."""
        return self.home / "blocks"

    def rpc_url_source(self) -> str:
        """Where `rpc_url` came from: `SOV_RPC_URL`, `config.toml`, or `devnet` when unset."""
        if os.environ.get("SOV_RPC_URL"):
            return "SOV_RPC_URL"
        if self.rpc_url is None:
            return "devnet"
        if read_config(self.home).get("rpc_url") == self.rpc_url:
            return str(self.config_path)
        return "argument"
