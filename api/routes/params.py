"""Typed path and query parameters, parsed by the same validators as the request bodies."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import Path, Query
from pydantic import PlainValidator, WithJsonSchema

from api.schemas import ADDRESS_PATTERN, Cid, DatasetId, JobId, Purpose, parse_address

# An EIP-55 check costs two keccak256 (pycryptodome): profiled under the grant-check benchmark,
# about a quarter of the service's CPU, for the same few grantees asked about over and over.
# Valid addresses are remembered (bounded); invalid ones raise, and are checked, every time.
cached_parse_address = lru_cache(maxsize=4096)(parse_address)

CachedAddress = Annotated[
    str,
    PlainValidator(cached_parse_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ADDRESS_PATTERN,
            "description": "0x address; EIP-55 checked if mixed case",
        }
    ),
]

DatasetIdPath = Annotated[DatasetId, Path(description="dataset id: uint256 in decimal or 0x-hex")]
JobIdPath = Annotated[JobId, Path(description="job id: uint256 in decimal or 0x-hex")]
RoundPath = Annotated[int, Path(ge=1, le=2**64 - 1, description="round number (1 = first round)")]
CidPath = Annotated[Cid, Path(description="CIDv1 of a model (base32)")]

DatasetIdQuery = Annotated[DatasetId, Query(description="dataset id: uint256 in decimal or 0x-hex")]
OptDatasetIdQuery = Annotated[DatasetId | None, Query(description="dataset id: uint256 in decimal or 0x-hex")]
AddressQuery = Annotated[CachedAddress, Query(description="0x address (EIP-55 checked when mixed case)")]
OptAddressQuery = Annotated[
    CachedAddress | None, Query(description="0x address (EIP-55 checked when mixed case)")
]
PurposeQuery = Annotated[Purpose, Query(description="purpose name or 0x bytes32 id")]
OptPurposeQuery = Annotated[Purpose | None, Query(description="purpose name or 0x bytes32 id")]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="items to skip")]
