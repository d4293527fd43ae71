// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";

/// @title Dataset deeds (ERC-721)
/// @notice Token id = the dataset's content root. Transferring a deed bumps the dataset's
/// epoch, which ends every grant the previous holder issued: a new owner starts with a
/// clean slate and must grant again (documented policy, enforced in UsageGrants).
contract DatasetRegistry is ERC721, IDatasetRegistry {
    /// @dev The only per-dataset storage besides the ERC-721 owner: one slot, written on a
    /// transfer (epoch) and on retirement, never at registration (keeps `register` cheap).
    struct DatasetConsent {
        uint32 epoch;
        bool retired;
    }

    /// @notice Bit 32 of a `consentWords` word: the dataset is retired (bits 0-31: the epoch).
    uint256 public constant RETIRED_BIT = 1 << 32;

    mapping(uint256 datasetId => DatasetConsent) private _consent;

    constructor() ERC721("Sovereign Dataset Deed", "SDD") {}

    /// @inheritdoc IDatasetRegistry
    function register(bytes32 contentRoot, uint256 parentId, string calldata uri)
        external
        returns (uint256 datasetId)
    {
        if (contentRoot == bytes32(0)) revert DatasetRegistryZeroRoot();
        datasetId = uint256(contentRoot);
        address holder = _ownerOf(datasetId);
        if (holder != address(0)) revert DatasetRegistryAlreadyRegistered(datasetId, holder);
        if (parentId != 0 && _ownerOf(parentId) == address(0)) revert DatasetRegistryUnknownParent(parentId);
        // `_mint` rather than `_safeMint`: a deed is a record, not a payment, and the
        // receiver hook would hand control to the caller mid-registration.
        _mint(msg.sender, datasetId);
        emit DatasetRegistered(datasetId, msg.sender, parentId, uri);
    }

    /// @inheritdoc IDatasetRegistry
    function retire(uint256 datasetId) external {
        address holder = _ownerOf(datasetId);
        if (holder == address(0)) revert DatasetRegistryUnknownDataset(datasetId);
        if (msg.sender != holder && !isApprovedForAll(holder, msg.sender)) {
            revert DatasetRegistryNotOwner(datasetId, msg.sender, holder);
        }
        if (_consent[datasetId].retired) revert DatasetRegistryAlreadyRetired(datasetId);
        _retire(datasetId);
    }

    /// @inheritdoc IDatasetRegistry
    function isRetired(uint256 datasetId) external view returns (bool) {
        return _consent[datasetId].retired;
    }

    /// @inheritdoc IDatasetRegistry
    /// @dev Never reverts: an unknown dataset reads as (address(0), 0, false).
    function datasetState(uint256 datasetId) external view returns (address owner, uint32 epoch, bool retired) {
        DatasetConsent memory consent = _consent[datasetId];
        return (_ownerOf(datasetId), consent.epoch, consent.retired);
    }

    /// @notice The consent state of many datasets in one call, for the hot path of grant checks
    /// (one storage read per dataset, no owner lookup). Word i packs `datasetIds[i]`'s state:
    /// bits 0-31 the epoch, bit 32 set when retired. Unknown datasets read as 0.
    function consentWords(uint256[] calldata datasetIds) external view returns (uint256[] memory words) {
        words = new uint256[](datasetIds.length);
        for (uint256 i; i < datasetIds.length; ++i) {
            DatasetConsent storage consent = _consent[datasetIds[i]];
            uint256 raw;
            // The slot holds exactly {uint32 epoch; bool retired}: bits 0-31 and bit 32, which
            // is the documented word layout, so the raw slot is the answer (one SLOAD).
            assembly ("memory-safe") {
                raw := sload(consent.slot)
            }
            words[i] = raw;
        }
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IDatasetRegistry).interfaceId || super.supportsInterface(interfaceId);
    }

    /// @dev Every mint and transfer passes here; a transfer (neither side zero) starts a new
    /// epoch so that grants issued by the previous holder stop authorising.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0)) {
            _consent[tokenId].epoch += 1;
        }
    }

    /// @dev The retirement transition: write, then emit.
    function _retire(uint256 datasetId) private {
        _consent[datasetId].retired = true;
        emit DatasetRetired(datasetId);
    }
}
