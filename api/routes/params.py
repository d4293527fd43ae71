"""Typed path and query parameters, parsed by the same validators as the request bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from api.schemas import Address, Cid, DatasetId, JobId, Purpose

DatasetIdPath = Annotated[DatasetId, Path(description="dataset id: uint256 in decimal or 0x-hex")]
JobIdPath = Annotated[JobId, Path(description="job id: uint256 in decimal or 0x-hex")]
RoundPath = Annotated[int, Path(ge=1, le=2**64 - 1, description="round number (1 = first round)")]
CidPath = Annotated[Cid, Path(description="CIDv1 of a model (base32)")]

DatasetIdQuery = Annotated[DatasetId, Query(description="dataset id: uint256 in decimal or 0x-hex")]
OptDatasetIdQuery = Annotated[DatasetId | None, Query(description="dataset id: uint256 in decimal or 0x-hex")]
AddressQuery = Annotated[Address, Query(description="0x address (EIP-55 checked when mixed case)")]
OptAddressQuery = Annotated[Address | None, Query(description="0x address (EIP-55 checked when mixed case)")]
PurposeQuery = Annotated[Purpose, Query(description="purpose name or 0x bytes32 id")]
OptPurposeQuery = Annotated[Purpose | None, Query(description="purpose name or 0x bytes32 id")]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="items to skip")]
