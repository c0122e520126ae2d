/*
 * make-crypt-vectors.mjs: writes crypt.json, independent test vectors for
 * cim-events' encrypted aggregates (docs/protocol.md, "Encrypted
 * aggregates"), made without any of our C code:
 *
 *   XChaCha20-Poly1305 (IETF)  @noble/ciphers (xchacha20poly1305)
 *   DAG-CBOR, CIDs             @ipld/dag-cbor, multiformats,
 *                              @multiformats/blake2
 *   fixed keys and nonces      SHA-256 of a label (node:crypto), cut to size
 *
 * pinned in package.json. The associated data is put together here from
 * the contract's words: "cim-events-dek-v1" 0x00 type 0x00 id, and so on.
 *
 *   keys       a data key wrapped under the master key, and its key block
 *              (the CIM-KEYS value: nonce, wrapped, aggregate_id,
 *              aggregate_type) with the block's CID
 *   values     one encrypted data or state value each: the plaintext
 *              (DAG-CBOR of value_json) and the encrypted value (nonce then
 *              ciphertext and tag); event ids holding U+0000 included, given
 *              in hex too
 *   events     whole 11-key event blocks whose data is the encrypted value
 *              as a byte string, with their CIDs
 *   snapshots  whole six-key snapshot blocks with the state encrypted
 *
 * tests/unit/test_crypt_vectors.c checks that our C decrypts every one of
 * them and, given the same key and nonce, produces the same bytes.
 *
 * Run: cd tests/vectors/crypt && npm install && node make-crypt-vectors.mjs
 *
 * No value here has a whole-number float (2.0) or an integer beyond 2^53,
 * so JS numbers say exactly what the JSON says.
 */

import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { blake2b256 } from '@multiformats/blake2/blake2b'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import assert from 'node:assert/strict'

const HERE = dirname(fileURLToPath(import.meta.url))
const enc = new TextEncoder()
const hex = (u8) => Buffer.from(u8).toString('hex')

function installed (pkg) {
	const f = join(HERE, 'node_modules', pkg, 'package.json')
	return JSON.parse(readFileSync(f, 'utf8')).version
}

/* n bytes made from a label: fixed, and different for every label. */
function bytesOf (label, n) {
	const out = createHash('sha256').update(label).digest()
	assert.ok(n <= out.length)
	return new Uint8Array(out.subarray(0, n))
}

function concat (...parts) {
	const len = parts.reduce((n, p) => n + p.length, 0)
	const out = new Uint8Array(len)
	let at = 0
	for (const p of parts) {
		out.set(p, at)
		at += p.length
	}
	return out
}

const NUL = new Uint8Array([0])
const adDek = (type, id) =>
	concat(enc.encode('cim-events-dek-v1'), NUL, enc.encode(type), NUL, enc.encode(id))
const adData = (eventId) =>
	concat(enc.encode('cim-events-data-v1'), NUL, enc.encode(eventId))
const adState = (type, id) =>
	concat(enc.encode('cim-events-state-v1'), NUL, enc.encode(type), NUL, enc.encode(id))

/* nonce || ciphertext || tag */
function seal (key, nonce, ad, plain) {
	const ct = xchacha20poly1305(key, nonce, ad).encrypt(plain)
	assert.equal(ct.length, plain.length + 16)
	const back = xchacha20poly1305(key, nonce, ad).decrypt(ct)
	assert.deepEqual(Buffer.from(back), Buffer.from(plain))
	return concat(nonce, ct)
}

const HASHERS = { 'blake2b-256': blake2b256, 'sha2-256': sha256 }

async function cidOf (bytes, hash = 'blake2b-256') {
	const digest = await HASHERS[hash].digest(bytes)
	return CID.create(1, dagCbor.code, digest)
}

const MASTER = bytesOf('cim-events vector master key', 32)

/* ---- wrapped data keys and their key blocks ------------------------------- */

const keyCases = [
	{ name: 'order', aggregate_type: 'order', aggregate_id: 'order-17' },
	{ name: 'escaped id characters', aggregate_type: 'customer',
	  aggregate_id: 'cust:42@eu+x=y_z-0' },
	{ name: 'longest type and id', aggregate_type: 'T' + 'y'.repeat(62) + '9',
	  aggregate_id: 'i'.repeat(127) + '=' }
]

const keys = []
for (const c of keyCases) {
	const dataKey = bytesOf('data key ' + c.name, 32)
	const nonce = bytesOf('wrap nonce ' + c.name, 24)
	const ad = adDek(c.aggregate_type, c.aggregate_id)
	const sealed = seal(MASTER, nonce, ad, dataKey)
	const wrapped = sealed.subarray(24)
	assert.equal(wrapped.length, 48)
	const block = dagCbor.encode({
		aggregate_type: c.aggregate_type,
		aggregate_id: c.aggregate_id,
		nonce,
		wrapped
	})
	keys.push({ ...c, data_key: hex(dataKey), nonce: hex(nonce), ad: hex(ad),
		wrapped: hex(wrapped), block_hex: hex(block),
		cid: (await cidOf(block)).toString() })
}

/* ---- encrypted values ------------------------------------------------------ */

const personal = '{"name":"Alice Example","email":"alice@example.org","age":42,' +
	'"score":1.5,"tags":["vip","eu"],"address":{"city":"Zürich","zip":null},' +
	'"consent":true,"balance":-7,"note":"a\\u0000b","emoji":"😀"}'

const valueCases = [
	{ name: 'data, plain event id', kind: 'data', event_id: '0192f0a4-7c1e-7a3b-8c5d-000000000001',
	  value_json: personal },
	{ name: 'data, event id holding U+0000', kind: 'data', event_id: 'evt\u0000one',
	  value_json: '{"card":"4111 1111 1111 1111"}' },
	{ name: 'data, event id of one U+0000', kind: 'data', event_id: '\u0000',
	  value_json: '"just a string"' },
	{ name: 'data, unicode event id, empty object', kind: 'data', event_id: 'événement-✓',
	  value_json: '{}' },
	{ name: 'data, null', kind: 'data', event_id: 'e-null', value_json: 'null' },
	{ name: 'state, object', kind: 'state', aggregate_type: 'customer',
	  aggregate_id: 'cust:42@eu+x=y_z-0', value_json: personal },
	{ name: 'state, array', kind: 'state', aggregate_type: 'order',
	  aggregate_id: 'order-17', value_json: '[1,-2,3.25,"x",[],{"k":false}]' }
]

const values = []
for (const c of valueCases) {
	const dataKey = bytesOf('data key ' + c.name, 32)
	const nonce = bytesOf('value nonce ' + c.name, 24)
	const ad = c.kind === 'data' ? adData(c.event_id)
		: adState(c.aggregate_type, c.aggregate_id)
	const plain = dagCbor.encode(JSON.parse(c.value_json))
	const out = { ...c }
	if (c.kind === 'data') out.event_id_hex = hex(enc.encode(c.event_id))
	values.push({ ...out, data_key: hex(dataKey), nonce: hex(nonce), ad: hex(ad),
		plaintext: hex(plain), enc: hex(seal(dataKey, nonce, ad, plain)) })
}

/* ---- encrypted event blocks ------------------------------------------------ */

function eventBlock (f, data, prev) {
	return {
		aggregate_type: f.aggregate_type,
		aggregate_id: f.aggregate_id,
		version: f.version,
		event_type: f.event_type,
		event_id: f.event_id,
		correlation_id: f.correlation_id ?? f.event_id,
		causation_id: f.causation_id ?? f.event_id,
		timestamp: f.timestamp,
		metadata: f.metadata ?? {},
		data,
		prev
	}
}

const eventCases = [
	{ name: 'customer registered, v1', hash: 'blake2b-256',
	  fields: { aggregate_type: 'customer', aggregate_id: 'cust-1', version: 1,
	    event_type: 'CustomerRegistered', event_id: '0192f0a4-7c1e-7a3b-8c5d-0000000000a1',
	    timestamp: '2026-11-22T10:00:00.000000001Z' },
	  data_json: personal },
	{ name: 'email changed, v2, metadata, links v1', hash: 'blake2b-256', prev_of: 0,
	  fields: { aggregate_type: 'customer', aggregate_id: 'cust-1', version: 2,
	    event_type: 'EmailChanged', event_id: '0192f0a4-7c1e-7a3b-8c5d-0000000000a2',
	    correlation_id: 'req-77', causation_id: '0192f0a4-7c1e-7a3b-8c5d-0000000000a1',
	    timestamp: '2026-11-22T10:00:05.500000000Z',
	    metadata: { user: 'admin', source: 'crm' } },
	  data_json: '{"email":"alice@new.example"}' },
	{ name: 'sha2-256 store, long data', hash: 'sha2-256',
	  fields: { aggregate_type: 'patient', aggregate_id: 'p:9@ward+3', version: 1,
	    event_type: 'NoteAdded', event_id: 'note-1',
	    timestamp: '2026-01-01T00:00:00.000000000Z' },
	  data_json: JSON.stringify({ text: 'x'.repeat(300) }) }
]

const events = []
for (const c of eventCases) {
	const dataKey = bytesOf('data key ' + c.fields.aggregate_type + '/' + c.fields.aggregate_id, 32)
	const nonce = bytesOf('data nonce ' + c.name, 24)
	const ad = adData(c.fields.event_id)
	const encValue = seal(dataKey, nonce, ad, dagCbor.encode(JSON.parse(c.data_json)))
	const prev = c.prev_of === undefined ? null : CID.parse(events[c.prev_of].cid)
	const block = eventBlock(c.fields, encValue, prev)
	const bytes = dagCbor.encode(block)
	const { data: _, ...shown } = { ...block, prev: prev === null ? null : prev.toString() }
	events.push({ name: c.name, hash: c.hash, block: shown, data_json: c.data_json,
		data_key: hex(dataKey), nonce: hex(nonce), enc: hex(encValue),
		block_hex: hex(bytes), cid: (await cidOf(bytes, c.hash)).toString() })
}

/* ---- encrypted snapshot blocks ---------------------------------------------- */

const snapshotCases = [
	{ name: 'customer state at v2', aggregate_type: 'customer', aggregate_id: 'cust-1',
	  version: 2, event_of: 1, timestamp: '2026-11-22T10:01:00.000000000Z',
	  state_json: '{"email":"alice@new.example","name":"Alice Example","events":2}' },
	{ name: 'string state, escaped id', aggregate_type: 'patient', aggregate_id: 'p:9@ward+3',
	  version: 1, event_of: 2, timestamp: '2026-01-01T00:00:01.000000000Z',
	  state_json: '"discharged"' }
]

const snapshots = []
for (const c of snapshotCases) {
	const dataKey = bytesOf('data key ' + c.aggregate_type + '/' + c.aggregate_id, 32)
	const nonce = bytesOf('state nonce ' + c.name, 24)
	const ad = adState(c.aggregate_type, c.aggregate_id)
	const encValue = seal(dataKey, nonce, ad, dagCbor.encode(JSON.parse(c.state_json)))
	const eventCid = CID.parse(events[c.event_of].cid)
	const bytes = dagCbor.encode({
		aggregate_type: c.aggregate_type,
		aggregate_id: c.aggregate_id,
		version: c.version,
		event_cid: eventCid,
		timestamp: c.timestamp,
		state: encValue
	})
	const { event_of: _, ...rest } = c
	snapshots.push({ ...rest, event_cid: eventCid.toString(), data_key: hex(dataKey),
		nonce: hex(nonce), enc: hex(encValue), block_hex: hex(bytes),
		cid: (await cidOf(bytes)).toString() })
}

const out = {
	comment: 'Made by make-crypt-vectors.mjs with @noble/ciphers and @ipld/dag-cbor; ' +
		'do not edit by hand. All byte values are lower-case hex.',
	generator: Object.fromEntries(['@noble/ciphers', '@ipld/dag-cbor', 'multiformats',
		'@multiformats/blake2'].map((p) => [p, installed(p)])),
	master_key: hex(MASTER),
	keys,
	values,
	events,
	snapshots
}
writeFileSync(join(HERE, 'crypt.json'), JSON.stringify(out, null, '\t') + '\n')
console.log(`crypt.json: ${keys.length} keys, ${values.length} values, ` +
	`${events.length} events, ${snapshots.length} snapshots`)
