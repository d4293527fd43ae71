// Pure codecs the owner page needs to act with a wallet: keccak-256, EIP-55 addresses, ABI
// encoding of the few calls it makes, revert decoding, and CIDv1 (parse, and compute from a file
// exactly as `sov cid` / `ipfs add --cid-version=1` do: raw leaves, 256 KiB chunks, balanced
// dag-pb with at most 174 links, sha2-256). Written for this page from the specifications; no
// network, no third-party code. Works in the page (window.SovCodec) and in Node (tests).
"use strict";

(function (root) {
  class InputError extends Error {
    constructor(message) { super(message); this.name = "InputError"; this.code = "invalid_input"; }
  }

  // ------------------------------------------------------------------ bytes

  const utf8 = (text) => new TextEncoder().encode(text);

  function toHex(bytes) {
    let out = "0x";
    for (const b of bytes) out += b.toString(16).padStart(2, "0");
    return out;
  }

  function fromHex(hex) {
    const digits = hex.startsWith("0x") || hex.startsWith("0X") ? hex.slice(2) : hex;
    if (digits.length % 2 || /[^0-9a-fA-F]/.test(digits)) throw new InputError(`${hex} is not hex`);
    const out = new Uint8Array(digits.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
    return out;
  }

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  // ------------------------------------------------------------------ keccak-256 (FIPS 202 Keccak-f[1600], original padding)

  const MASK64 = (1n << 64n) - 1n;
  const ROUND_CONSTANTS = (() => {
    // rc(t): the LFSR x^8 + x^6 + x^5 + x^4 + 1 of the specification.
    const rc = (t) => {
      let r = 1;
      for (let i = 0; i < t % 255; i++) { r <<= 1; if (r & 0x100) r ^= 0x171; }
      return r & 1;
    };
    const out = [];
    for (let round = 0; round < 24; round++) {
      let c = 0n;
      for (let j = 0; j <= 6; j++) if (rc(j + 7 * round)) c |= 1n << BigInt((1 << j) - 1);
      out.push(c);
    }
    return out;
  })();
  const ROTATIONS = (() => {
    const r = new Array(25).fill(0n);
    let x = 1, y = 0;
    for (let t = 0; t < 24; t++) {
      r[x + 5 * y] = BigInt((((t + 1) * (t + 2)) / 2) % 64);
      [x, y] = [y, (2 * x + 3 * y) % 5];
    }
    return r;
  })();
  const rotl = (v, n) => (n === 0n ? v : ((v << n) | (v >> (64n - n))) & MASK64);

  function keccakF(a) {
    const c = new Array(5), b = new Array(25);
    for (let round = 0; round < 24; round++) {
      for (let x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
      for (let x = 0; x < 5; x++) {
        const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1n);
        for (let y = 0; y < 25; y += 5) a[x + y] ^= d;
      }
      for (let x = 0; x < 5; x++) {
        for (let y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(a[x + 5 * y], ROTATIONS[x + 5 * y]);
      }
      for (let y = 0; y < 25; y += 5) {
        for (let x = 0; x < 5; x++) a[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK64 & b[((x + 2) % 5) + y]);
      }
      a[0] ^= ROUND_CONSTANTS[round];
    }
  }

  function keccak256(input) {
    const bytes = typeof input === "string" ? utf8(input) : input;
    const rate = 136;
    const padded = new Uint8Array(Math.floor(bytes.length / rate) * rate + rate);
    padded.set(bytes);
    padded[bytes.length] ^= 0x01;
    padded[padded.length - 1] ^= 0x80;
    const state = new Array(25).fill(0n);
    for (let offset = 0; offset < padded.length; offset += rate) {
      for (let i = 0; i < rate / 8; i++) {
        let lane = 0n;
        for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[offset + 8 * i + k]);
        state[i] ^= lane;
      }
      keccakF(state);
    }
    const out = new Uint8Array(32);
    for (let i = 0; i < 4; i++) {
      let lane = state[i];
      for (let k = 0; k < 8; k++) { out[8 * i + k] = Number(lane & 0xffn); lane >>= 8n; }
    }
    return out;
  }

  const selector = (signature) => toHex(keccak256(signature).slice(0, 4));

  // ------------------------------------------------------------------ addresses

  function checksumAddress(address) {
    const lower = address.toLowerCase().replace(/^0x/, "");
    const hash = toHex(keccak256(lower)).slice(2);
    let out = "0x";
    for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
    return out;
  }

  /** A 0x address; a mixed-case one must carry a valid EIP-55 checksum. Returns it checksummed. */
  function parseAddress(text, field) {
    const value = String(text ?? "").trim();
    if (!/^0[xX][0-9a-fA-F]{40}$/.test(value)) {
      throw new InputError(`${field} ${JSON.stringify(value)} is not an address: expected 0x followed by 40 hex digits`);
    }
    const digits = value.slice(2);
    const checksummed = checksumAddress(value);
    if (digits !== digits.toLowerCase() && digits !== digits.toUpperCase() && checksummed !== "0x" + digits) {
      throw new InputError(`${field} ${value} has an invalid EIP-55 checksum (did you mean ${checksummed}?)`);
    }
    if (/^0x0{40}$/i.test(value)) throw new InputError(`${field} is the zero address`);
    return checksummed;
  }

  // ------------------------------------------------------------------ ABI

  function uintWord(value, bits, field) {
    const n = BigInt(value);
    if (n < 0n || n >= 1n << BigInt(bits)) throw new InputError(`${field} ${n} is out of range for uint${bits}`);
    return fromHex(n.toString(16).padStart(64, "0"));
  }

  function staticWords(type, value, field) {
    let m;
    if ((m = /^uint(\d+)$/.exec(type))) return [uintWord(value, Number(m[1]), field)];
    if (type === "address") return [fromHex(parseAddress(value, field).slice(2).padStart(64, "0"))];
    if (type === "bytes32") {
      const raw = typeof value === "string" ? fromHex(value) : value;
      if (raw.length !== 32) throw new InputError(`${field} is ${raw.length} bytes, expected 32`);
      return [raw];
    }
    if (type === "bool") return [uintWord(value ? 1 : 0, 8, field)];
    if (type.startsWith("(")) {
      const inner = type.slice(1, -1).split(",");
      return inner.flatMap((t, i) => staticWords(t, value[i], `${field}[${i}]`));
    }
    throw new Error(`unsupported ABI type ${type}`);
  }

  function padRight(bytes) {
    const out = new Uint8Array(Math.ceil(bytes.length / 32) * 32);
    out.set(bytes);
    return out;
  }

  /** ABI-encode `values` as `types` (uintN, address, bytes32, bool, static tuples, string, bytes). */
  function encodeArgs(types, values) {
    const heads = [], tails = [];
    const headSize = types.reduce((n, t) => n + (t === "string" || t === "bytes" ? 32 : 32 * staticWords(t, dummy(t), "").length), 0);
    let tailOffset = headSize;
    types.forEach((type, i) => {
      if (type === "string" || type === "bytes") {
        const raw = type === "string" ? utf8(values[i]) : values[i];
        heads.push(uintWord(tailOffset, 256, "offset"));
        const tail = concat([uintWord(raw.length, 256, "length"), padRight(raw)]);
        tails.push(tail);
        tailOffset += tail.length;
      } else {
        heads.push(...staticWords(type, values[i], `argument ${i}`));
      }
    });
    return concat([...heads, ...tails]);
  }

  function dummy(type) {
    if (type.startsWith("(")) return type.slice(1, -1).split(",").map(dummy);
    if (type === "address") return "0x" + "11".repeat(20);
    if (type === "bytes32") return new Uint8Array(32);
    return 0;
  }

  /** Calldata of `signature` (e.g. "retire(uint256)") with `values`. */
  function calldata(signature, values) {
    const types = splitTypes(signature.slice(signature.indexOf("(") + 1, -1));
    return selector(signature) + toHex(encodeArgs(types, values)).slice(2);
  }

  function splitTypes(list) {
    const out = [];
    let depth = 0, start = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i] === "(") depth++;
      else if (list[i] === ")") depth--;
      else if (list[i] === "," && depth === 0) { out.push(list.slice(start, i)); start = i + 1; }
    }
    if (list.length) out.push(list.slice(start));
    return out;
  }

  function decodeWord(type, word) {
    const n = BigInt(toHex(word));
    if (type === "address") return checksumAddress("0x" + n.toString(16).padStart(40, "0"));
    if (type === "bool") return n !== 0n;
    if (type.startsWith("bytes")) return toHex(word);
    return n;
  }

  /** Decode a return value or error payload of static types (and a lone string). */
  function decodeArgs(types, data) {
    const bytes = typeof data === "string" ? fromHex(data) : data;
    return types.map((type, i) => {
      const word = bytes.slice(32 * i, 32 * i + 32);
      if (type === "string") {
        const offset = Number(BigInt(toHex(word)));
        const length = Number(BigInt(toHex(bytes.slice(offset, offset + 32))));
        return new TextDecoder().decode(bytes.slice(offset + 32, offset + 32 + length));
      }
      return decodeWord(type, word);
    });
  }

  const PANICS = { 0x01: "assertion failed", 0x11: "arithmetic overflow or underflow", 0x12: "division by zero", 0x32: "array index out of bounds" };

  /**
   * `errors` is the service's list of {selector, name, inputs: [{name, type}]} (from the ABIs).
   * Returns {name, args: {name: value}, text} for revert `data`, or null when it is not known.
   */
  function decodeRevert(data, errors) {
    if (typeof data !== "string" || !/^0x[0-9a-fA-F]*$/.test(data) || data.length < 10) return null;
    const sel = data.slice(0, 10).toLowerCase();
    const standard = [
      { selector: selector("Error(string)"), name: "Error", inputs: [{ name: "reason", type: "string" }] },
      { selector: selector("Panic(uint256)"), name: "Panic", inputs: [{ name: "code", type: "uint256" }] },
    ];
    const known = [...standard, ...errors].find((e) => e.selector.toLowerCase() === sel);
    if (!known) return { name: null, args: {}, text: `unknown custom error ${sel}` };
    const values = decodeArgs(known.inputs.map((p) => p.type), data.slice(10));
    const args = {};
    known.inputs.forEach((p, i) => { args[p.name || `arg${i}`] = values[i]; });
    const shown = known.inputs.map((p, i) => {
      const v = values[i];
      const t = p.type;
      const text = typeof v === "bigint" ? (t === "uint256" && v > 1n << 64n ? "0x" + v.toString(16).padStart(64, "0") : v.toString()) : String(v);
      return `${p.name || "arg" + i}=${text}`;
    });
    let text = `${known.name}(${shown.join(", ")})`;
    if (known.name === "Panic") text += `: ${PANICS[Number(values[0])] || "panic"}`;
    if (known.name === "Error") text = `reverted: ${values[0]}`;
    return { name: known.name, args, text };
  }

  // ------------------------------------------------------------------ CIDv1 (base32, raw / dag-pb, sha2-256)

  const RAW = 0x55, DAG_PB = 0x70, SHA2_256 = 0x12;
  const B32 = "abcdefghijklmnopqrstuvwxyz234567";

  function base32(bytes) {
    let out = "", bits = 0, value = 0;
    for (const b of bytes) {
      value = (value << 8) | b; bits += 8;
      while (bits >= 5) { out += B32[(value >>> (bits - 5)) & 31]; bits -= 5; }
    }
    if (bits > 0) out += B32[(value << (5 - bits)) & 31];
    return out;
  }

  function cidText(codec, digest) { return "b" + base32(concat([Uint8Array.of(1, codec, SHA2_256, 32), digest])); }

  /** Parse a CIDv1 in base32 as `sov cid` prints it: {codec, digest (32 bytes), text}. */
  function parseCid(text) {
    const value = String(text ?? "").trim();
    if (!value) throw new InputError("CID is empty: paste the CIDv1 that `sov cid FILE` prints, or choose the file");
    if (value.startsWith("Qm") && value.length === 46) {
      throw new InputError(`${value} is a CIDv0; this ledger uses CIDv1 in base32 (convert with \`ipfs cid format -v 1 -b base32 CID\`)`);
    }
    if (/^[zZ]/.test(value)) throw new InputError(`${value} is base58btc; this ledger uses CIDv1 in base32 ('b...'; \`ipfs cid base32 CID\`)`);
    if (!/^b[a-z2-7]+$/.test(value)) {
      throw new InputError(`${JSON.stringify(value)} is not a CIDv1 in base32: expected 'b' followed by letters a-z and digits 2-7`);
    }
    const bytes = [];
    let bits = 0, acc = 0;
    for (const ch of value.slice(1)) {
      acc = (acc << 5) | B32.indexOf(ch); bits += 5;
      if (bits >= 8) { bytes.push((acc >>> (bits - 8)) & 255); bits -= 8; }
    }
    const raw = Uint8Array.from(bytes);
    if (raw.length !== 36 || raw[0] !== 1 || raw[2] !== SHA2_256 || raw[3] !== 32) {
      throw new InputError(`${value} is not a sha2-256 CIDv1 (${raw.length} bytes; expected 36: version 1, codec, 0x12, 32-byte digest)`);
    }
    if (raw[1] !== RAW && raw[1] !== DAG_PB) throw new InputError(`${value} has codec 0x${raw[1].toString(16)}; valid: 0x55 (raw) or 0x70 (dag-pb)`);
    const digest = raw.slice(4);
    if (cidText(raw[1], digest) !== value) throw new InputError(`${value} is not the canonical base32 form of its CID`);
    return { codec: raw[1], digest, text: value };
  }

  function varint(n) {
    const out = [];
    while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80); }
    out.push(n);
    return Uint8Array.from(out);
  }

  const field = (tag, payload) => concat([Uint8Array.of(tag), varint(payload.length), payload]);

  function fileNode(links) {
    // PBNode{Links=2 (first), Data=1}; PBLink{Hash=1, Name=2 (empty, present), Tsize=3};
    // UnixFS Data{Type=File, filesize=3, blocksizes=4 (unpacked)}: byte-for-byte Kubo's layout.
    const parts = [], sizes = [];
    let fileSize = 0;
    for (const l of links) {
      parts.push(field(0x12, concat([field(0x0a, l.cid), Uint8Array.of(0x12, 0x00, 0x18), varint(l.tsize)])));
      fileSize += l.fileSize;
      sizes.push(Uint8Array.of(0x20), varint(l.fileSize));
    }
    parts.push(field(0x0a, concat([Uint8Array.of(0x08, 0x02, 0x18), varint(fileSize), ...sizes])));
    return concat(parts);
  }

  async function sha256(bytes) { return new Uint8Array(await root.crypto.subtle.digest("SHA-256", bytes)); }

  /**
   * The CIDv1 of a Blob/File as `sov cid` computes it. `onProgress(bytesDone)` after each chunk.
   * `chunkSize`/`maxLinks` exist for tests (anything but the defaults gives CIDs Kubo would not).
   */
  async function cidOfBlob(blob, { chunkSize = 262144, maxLinks = 174, onProgress } = {}) {
    if (!root.crypto || !root.crypto.subtle) {
      throw new InputError("this page cannot hash files here (no WebCrypto: the page is not served from https or localhost); paste the CID from `sov cid FILE` instead");
    }
    const levels = [];
    const build = async (links) => {
      const node = fileNode(links);
      const cid = concat([Uint8Array.of(1, DAG_PB, SHA2_256, 32), await sha256(node)]);
      return { cid, tsize: node.length + links.reduce((n, l) => n + l.tsize, 0), fileSize: links.reduce((n, l) => n + l.fileSize, 0) };
    };
    const push = async (level, link) => {
      if (level === levels.length) levels.push([]);
      if (levels[level].length === maxLinks) {
        const node = await build(levels[level]);
        levels[level] = [];
        await push(level + 1, node);
      }
      levels[level].push(link);
    };
    let offset = 0;
    do {
      const chunk = new Uint8Array(await blob.slice(offset, offset + chunkSize).arrayBuffer());
      const cid = concat([Uint8Array.of(1, RAW, SHA2_256, 32), await sha256(chunk)]);
      await push(0, { cid, tsize: chunk.length, fileSize: chunk.length });
      offset += chunkSize;
      if (onProgress) onProgress(Math.min(offset, blob.size));
    } while (offset < blob.size);
    if (levels.length === 1 && levels[0].length === 1) return cidText(RAW, levels[0][0].cid.slice(4));
    for (let level = 0; ; level++) {
      const node = await build(levels[level]);
      levels[level] = [];
      if (level === levels.length - 1) return cidText(DAG_PB, node.cid.slice(4));
      await push(level + 1, node);
    }
  }

  root.SovCodec = {
    InputError, toHex, fromHex, utf8, keccak256, selector, checksumAddress, parseAddress,
    encodeArgs, calldata, decodeArgs, decodeRevert, parseCid, cidOfBlob,
  };
})(typeof window !== "undefined" ? window : globalThis);
