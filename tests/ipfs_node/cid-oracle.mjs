// Independent CID oracle for tests/store: prints, one per line, the CIDv1 that
// `ipfs add --cid-version=1` (Kubo defaults: raw leaves, 262144-byte chunks, balanced
// layout, 174 links per node, sha2-256) gives each file named on the command line.
// It uses the JavaScript UnixFS importer, so the Python importer is checked against an
// implementation that shares no code with it.
// ORACLE_CHUNK_SIZE and ORACLE_MAX_LINKS override the chunk size and the links per node,
// so the tests can check deep trees (3+ levels) with small files.
import { createReadStream } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'

const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: Number(process.env.ORACLE_CHUNK_SIZE ?? 262144) }),
  layout: balanced({ maxChildrenPerNode: Number(process.env.ORACLE_MAX_LINKS ?? 174) }),
  wrapWithDirectory: false
}

const paths = process.argv.slice(2)
if (paths.length === 0) {
  process.stderr.write('usage: node cid-oracle.mjs FILE...\n')
  process.exit(2)
}
for (const path of paths) {
  // The blocks themselves are not needed, only the root CID: discard them.
  const blockstore = new BlackHoleBlockstore()
  let root
  for await (const entry of importer([{ content: createReadStream(path, { highWaterMark: 1 << 20 }) }], blockstore, options)) {
    root = entry.cid
  }
  process.stdout.write(`${root.toString()}\n`)
}
