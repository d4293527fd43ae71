// Signs a UsageGrants `Grant` with ethers.js v6 (an independent EIP-712 implementation) and
// prints the eth_signTypedData_v4 JSON a wallet flow would hand over, with the integers the
// way JavaScript tools write them: domain.chainId, nonce and deadline as 0x-hex strings.
//
// Input (one JSON object on stdin): { privateKey, chainId, verifyingContract, message } where
// message has datasetId, grantee, purpose, notBefore, expiresAt, the four terms fields
// (epsilonHundredths, deltaNegExponent, minParticipants, maxRounds; 0 when absent), nonce,
// deadline (decimal strings or numbers). Output (stdout): { document, compactSignature }.
import { readFileSync } from "node:fs";
import { TypedDataEncoder, Signature, Wallet, toQuantity } from "ethers";

const input = JSON.parse(readFileSync(0, "utf8"));
const wallet = new Wallet(input.privateKey);
const domain = {
  name: "UsageGrants",
  version: "2",
  chainId: BigInt(input.chainId),
  verifyingContract: input.verifyingContract,
};
const types = {
  Grant: [
    { name: "datasetId", type: "uint256" },
    { name: "grantee", type: "address" },
    { name: "purpose", type: "bytes32" },
    { name: "notBefore", type: "uint64" },
    { name: "expiresAt", type: "uint64" },
    { name: "epsilonHundredths", type: "uint16" },
    { name: "deltaNegExponent", type: "uint8" },
    { name: "minParticipants", type: "uint8" },
    { name: "maxRounds", type: "uint16" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
};
const m = input.message;
const value = {
  datasetId: BigInt(m.datasetId),
  grantee: m.grantee,
  purpose: m.purpose,
  notBefore: BigInt(m.notBefore),
  expiresAt: BigInt(m.expiresAt),
  epsilonHundredths: BigInt(m.epsilonHundredths ?? 0),
  deltaNegExponent: BigInt(m.deltaNegExponent ?? 0),
  minParticipants: BigInt(m.minParticipants ?? 0),
  maxRounds: BigInt(m.maxRounds ?? 0),
  nonce: BigInt(m.nonce),
  deadline: BigInt(m.deadline),
};
const signature = await wallet.signTypedData(domain, types, value);
const payload = TypedDataEncoder.getPayload(domain, types, value);
payload.domain.chainId = toQuantity(domain.chainId);
payload.message.nonce = toQuantity(value.nonce);
payload.message.deadline = toQuantity(value.deadline);
payload.message.expiresAt = Number(value.expiresAt);
payload.signature = signature;
process.stdout.write(
  JSON.stringify({ document: payload, compactSignature: Signature.from(signature).compactSerialized }, null, 2) + "\n",
);
