// Runs the page's codecs (api/web/codec.js) in Node on cases from stdin and prints the results as
// JSON, so test_wallet_codecs.py can compare them with the Python ledger's own implementations.
import { readFileSync } from "node:fs";
import { Blob } from "node:buffer";
import { pathToFileURL } from "node:url";

await import(pathToFileURL(process.argv[2]).href);
const C = globalThis.SovCodec;
const cases = JSON.parse(readFileSync(0, "utf8"));
const bytes = (hex) => C.fromHex(hex);
const out = {
  keccak: cases.keccak.map((hex) => C.toHex(C.keccak256(bytes(hex)))),
  checksum: cases.checksum.map((a) => C.checksumAddress(a)),
  calldata: cases.calldata.map(([sig, args]) => C.calldata(sig, args.map((a) => (typeof a === "string" && /^\d+$/.test(a) ? BigInt(a) : a)))),
  revert: cases.revert.map(([data, errors]) => {
    const d = C.decodeRevert(data, errors);
    return d && d.text;
  }),
  cid: [],
  parseCid: cases.parseCid.map((text) => {
    try { return { ok: C.toHex(C.parseCid(text).digest) }; } catch (e) { return { error: e.message, name: e.name }; }
  }),
  address: cases.address.map((text) => {
    try { return { ok: C.parseAddress(text, "grantee") }; } catch (e) { return { error: e.message }; }
  }),
};
for (const [hex, chunkSize, maxLinks] of cases.cid) {
  out.cid.push(await C.cidOfBlob(new Blob([bytes(hex)]), { chunkSize, maxLinks }));
}
process.stdout.write(JSON.stringify(out));
