/*
 * make-snapshot-vectors.mjs: writes snapshots.json, independent test
 * vectors for the snapshot block kept in CIM-SNAPSHOTS (six keys:
 * aggregate_type, aggregate_id, version, event_cid as a link, timestamp,
 * state), encoded by the reference @ipld/dag-cbor with its CID in
 * blake2b-256, as pinned in package.json. tests/unit/test_snapshot.c checks
 * that our encoder gives the same bytes and CIDs, and that our decoder
 * reads them back.
 *
 * Run: cd tests/vectors && npm install && node make-snapshot-vectors.mjs
 */

import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { blake2b256 } from '@multiformats/blake2/blake2b'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const HERE = dirname(fileURLToPath(import.meta.url))

async function cidOf (bytes) {
	const mh = await blake2b256.digest(bytes)
	return CID.createV1(dagCbor.code, mh)
}

/* Any block will do as the event the snapshot points at. */
const eventCid = await cidOf(dagCbor.encode({ any: 'event' }))

/* state_json is the JSON the C side parses to rebuild the state: no
 * floats with whole values here, so JS numbers say exactly what is meant. */
const cases = [
	{ name: 'object state', aggregate_type: 'order', aggregate_id: 'order-17',
	  version: 5, timestamp: '2026-11-22T10:00:00.123456789Z',
	  state_json: '{"total":42,"lines":[{"sku":"a-1","qty":2}],"open":true}' },
	{ name: 'string state, id with escapes', aggregate_type: 'account',
	  aggregate_id: 'acc:1@bank+x=y', version: 100000,
	  timestamp: '2026-01-01T00:00:00.000000000Z', state_json: '"closed"' },
	{ name: 'null state, large version', aggregate_type: 'x',
	  aggregate_id: '0', version: 4294967296,
	  timestamp: '1999-12-31T23:59:59.999999999Z', state_json: 'null' },
	{ name: 'unicode and negative numbers', aggregate_type: 'A_b-C',
	  aggregate_id: 'Ünï', version: 1, timestamp: '2026-11-22T10:00:00.000000001Z',
	  state_json: '{"€":-1,"a":-9007199254740991,"b":[1.5,"ü"],"":{}}' }
]

const out = { generator: 'make-snapshot-vectors.mjs', event_cid: eventCid.toString(), cases: [] }
for (const c of cases) {
	const block = {
		aggregate_type: c.aggregate_type,
		aggregate_id: c.aggregate_id,
		version: c.version,
		event_cid: eventCid,
		timestamp: c.timestamp,
		state: JSON.parse(c.state_json)
	}
	const bytes = dagCbor.encode(block)
	out.cases.push({ ...c, block_hex: Buffer.from(bytes).toString('hex'),
		cid: (await cidOf(bytes)).toString() })
}
writeFileSync(join(HERE, 'snapshots.json'), JSON.stringify(out, null, 1) + '\n')
console.log(`wrote ${out.cases.length} snapshot vectors`)
