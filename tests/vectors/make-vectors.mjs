/*
 * make-vectors.mjs: writes events.json, independent test vectors for the
 * cim-events event block (DAG-CBOR) and its CIDs, made with the reference
 * JavaScript IPLD implementation (@ipld/dag-cbor, multiformats,
 * @multiformats/blake2), pinned in package.json.
 *
 * Run: cd tests/vectors && npm install && node make-vectors.mjs
 *
 * Every block is encoded by @ipld/dag-cbor with prev as a CID object and
 * everything else as plain JS data. Two things JS numbers cannot say on their
 * own are handled like this:
 *
 *  - Integers beyond 2^53 are BigInt, which cborg (under dag-cbor) writes as
 *    CBOR integers in their shortest form.
 *  - A float whose value is a whole number (2.0) would be written by
 *    dag-cbor as the integer 2, since JS has one number type. Such values are
 *    wrapped in F64 below; the encoder used for blocks holding one is cborg
 *    with dag-cbor's own exported encodeOptions plus one type encoder that
 *    turns an F64 into a float token. With dag-cbor's float64 option that
 *    token is written exactly as dag-cbor writes every other float: 0xfb and
 *    the 8 bytes of the IEEE 754 double (2.0 -> fb 4000000000000000). The
 *    script checks that this encoder gives the same bytes as dag-cbor's
 *    encode for every block without an F64, and for F64(1.5) vs 1.5.
 *
 * Each event case also carries data_json, the JSON text the C side parses to
 * rebuild the data: integers as plain digits, floats always with a decimal
 * point or an exponent (1e300 as "1e+300", 2.0 as "2.0").
 */

import * as dagCbor from '@ipld/dag-cbor'
import * as cborg from 'cborg'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { blake2b256 } from '@multiformats/blake2/blake2b'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import assert from 'node:assert/strict'

const RAW_CODE = 0x55
const HERE = dirname(fileURLToPath(import.meta.url))

/* The version of an installed package, for the record in events.json. */
function installed (pkg) {
	const f = join(HERE, 'node_modules', pkg, 'package.json')
	return JSON.parse(readFileSync(f, 'utf8')).version
}

/* A float that must stay a float even when its value is a whole number. */
class F64 {
	constructor (v) {
		this.v = v
	}
}

const baseObjectEncoder = dagCbor.encodeOptions.typeEncoders.Object
const f64Options = {
	...dagCbor.encodeOptions,
	typeEncoders: {
		...dagCbor.encodeOptions.typeEncoders,
		Object: (obj, typ, options, refStack) => {
			if (obj instanceof F64) {
				return [new cborg.Token(cborg.Type.float, obj.v)]
			}
			return baseObjectEncoder(obj, typ, options, refStack)
		}
	}
}

function hasF64 (v) {
	if (v instanceof F64) return true
	if (Array.isArray(v)) return v.some(hasF64)
	if (v !== null && typeof v === 'object' && !(v instanceof CID)) {
		return Object.values(v).some(hasF64)
	}
	return false
}

function encodeBlock (node) {
	const viaExt = cborg.encode(node, f64Options)
	if (!hasF64(node)) {
		const viaDag = dagCbor.encode(node)
		assert.deepEqual(Buffer.from(viaExt), Buffer.from(viaDag),
			'extended encoder differs from dag-cbor')
		return viaDag
	}
	return viaExt
}

const HASHERS = { 'blake2b-256': blake2b256, 'sha2-256': sha256 }

async function cidOf (bytes, hash, code = dagCbor.code) {
	const digest = await HASHERS[hash].digest(bytes)
	return CID.create(1, code, digest)
}

const hex = (u8) => Buffer.from(u8).toString('hex')

/* JSON text of a data value: integers as digits, floats always with a point
 * or an exponent. JS numbers that are safe integers count as integers;
 * everything else that is a number is a float (as cborg writes it). */
function numText (n) {
	assert.ok(Number.isFinite(n))
	let s = String(n)
	if (!/[.eE]/.test(s)) s += '.0'
	return s
}

function scalarText (v) {
	if (v === null) return 'null'
	if (v === true) return 'true'
	if (v === false) return 'false'
	if (typeof v === 'bigint') return v.toString()
	if (v instanceof F64) return numText(v.v)
	if (typeof v === 'number') {
		return Number.isSafeInteger(v) ? String(v) : numText(v)
	}
	if (typeof v === 'string') return JSON.stringify(v)
	if (v instanceof CID) return JSON.stringify(v.toString())
	return undefined
}

/* Stable pretty printer (keys in insertion order, tabs), or compact when
 * indent is null. */
function toJSON (v, indent = '', step = '\t') {
	const s = scalarText(v)
	if (s !== undefined) return s
	const compact = step === null
	const inner = compact ? '' : indent + step
	const nl = compact ? '' : '\n'
	const sep = compact ? ',' : ',\n'
	if (Array.isArray(v)) {
		if (v.length === 0) return '[]'
		const items = v.map((x) => inner + toJSON(x, inner, step))
		return '[' + nl + items.join(sep) + nl + (compact ? '' : indent) + ']'
	}
	assert.equal(typeof v, 'object')
	const keys = Object.keys(v)
	if (keys.length === 0) return '{}'
	const colon = compact ? ':' : ': '
	const items = keys.map((k) => inner + JSON.stringify(k) + colon +
		toJSON(v[k], inner, step))
	return '{' + nl + items.join(sep) + nl + (compact ? '' : indent) + '}'
}

/* The data value as plain JSON-parsed JS, for checking that the text we emit
 * reads back to the same numbers (BigInt-aware comparison by text). */
function checkDataJson (data, text) {
	/* Re-encode the compact text of the value and compare: the printer is
	 * deterministic, so this checks JSON validity and idempotence. */
	JSON.parse(text)
	assert.equal(toJSON(data, '', null), text)
}

/* The event cases. prev: 'chain' links to the previous case's block. */
const EVID = (n) => `0192f0a4-7c1e-7a3b-8c5d-${String(n).padStart(12, '0')}`
const TS = (n) => `2026-11-22T10:00:${String(n).padStart(2, '0')}.123456789Z`

function chain (hash, prefix, aggId) {
	return [
		{
			name: `${prefix}-v1`,
			hash,
			version: 1,
			aggregate_id: aggId,
			event_type: 'OrderPlaced',
			metadata: {},
			data: { total: 42, items: ['sku-1', 'sku-2'], paid: false }
		},
		{
			name: `${prefix}-v2`,
			hash,
			version: 2,
			prev: 'chain',
			aggregate_id: aggId,
			event_type: 'OrderPaid',
			metadata: { 'user': 'alice', 'source': 'web' },
			data: { amount: 42, currency: 'EUR' }
		},
		{
			name: `${prefix}-v3`,
			hash,
			version: 3,
			prev: 'chain',
			aggregate_id: aggId,
			event_type: 'OrderShipped',
			correlation_id: 'corr-fixed',
			causation_id: 'cause-fixed',
			metadata: { 'trace-id': '4bf92f3577b34da6' },
			data: { carrier: 'dhl', parcels: 1 }
		}
	]
}

const CASES = [
	...chain('blake2b-256', 'chain-blake2b', 'order-17'),
	...chain('sha2-256', 'chain-sha2', 'order-18'),
	{
		name: 'key-sorting',
		hash: 'blake2b-256',
		metadata: { 'bb': '1', 'a': '2', 'ccc': '3', 'ab': '4' },
		data: {
			b: 1,
			aa: 2,
			a: 3,
			ccc: { zz: true, y: null },
			'é': 'two-byte key',
			z: [{ bb: false, c: 0 }],
			ab: {}
		}
	},
	{
		name: 'integer-boundaries',
		hash: 'sha2-256',
		data: {
			uints: [0, 23, 24, 255, 256, 65535, 65536, 4294967295,
				4294967296, 9223372036854775807n],
			negints: [-1, -24, -25, -256, -257, -9223372036854775808n],
			max: 9223372036854775807n,
			min: -9223372036854775808n
		}
	},
	{
		name: 'floats',
		hash: 'blake2b-256',
		data: {
			floats: [1.5, -0.25, 1e300, 0.1, new F64(2.0)],
			two: new F64(2.0),
			int_two: 2
		}
	},
	{
		name: 'unicode',
		hash: 'sha2-256',
		metadata: { 'note': 'café 日本 🎉' },
		data: { 'é': 'é', '日本': '日本', emoji: '🎉😀', mixed: 'a\u00e9\u65e5\u{1f600}' }
	},
	{
		name: 'empty-array-data',
		hash: 'blake2b-256',
		metadata: { 'user': 'bob', 'reason': 'test' },
		data: []
	},
	{
		name: 'empty-object-data',
		hash: 'sha2-256',
		data: {}
	},
	{
		name: 'string-data',
		hash: 'blake2b-256',
		data: 'just a string'
	},
	{
		name: 'null-data',
		hash: 'sha2-256',
		data: null
	},
	{
		name: 'large-version',
		hash: 'blake2b-256',
		version: 4294967296,
		prev: 'chain',
		data: { n: 1 }
	},
	/* U+0000 is a character like any other: at the start, in the middle
	 * and at the end of the ids, metadata keys and values, data keys and
	 * values; keys equal up to a NUL are different keys, sorted as bytes;
	 * and U+E000/U+E001, which the C reader uses to escape such keys. */
	{
		name: 'nul-strings',
		hash: 'sha2-256',
		event_id: '\u0000evt\u00001\u0000',
		correlation_id: '',
		causation_id: 'cause\u0000',
		metadata: { 'k\u0000': '\u0000v', '\u0000': '', k: 'plain\u0000' },
		data: {
			'\u0000': '\u0000',
			'a\u0000': ['\u0000a', 'a\u0000a', { 'b\u0000c': null }],
			'\u0000a': 1,
			a: '\ue000\u0000\ue001',
			'\ue000': 2,
			'\ue001\u0000': 3,
			ctl: '\u0001\t\n\r\u001f\u007f'
		}
	}
]

async function main () {
	/* The float encoder's float token agrees with dag-cbor's own floats. */
	assert.deepEqual(Buffer.from(cborg.encode([new F64(1.5), new F64(-0.25)], f64Options)),
		Buffer.from(dagCbor.encode([1.5, -0.25])))
	assert.equal(hex(cborg.encode(new F64(2.0), f64Options)), 'fb4000000000000000')

	const events = []
	let prevCid = null
	let n = 0
	for (const c of CASES) {
		n++
		const eventId = c.event_id ?? EVID(n)
		const version = c.version ?? 1
		let prev = null
		if (c.prev === 'chain') {
			assert.ok(prevCid, `${c.name}: no previous block`)
			prev = prevCid
		}
		assert.equal(prev === null, version === 1, `${c.name}: prev vs version`)
		/* Field order here is only for reading; the encoder sorts keys. */
		const block = {
			aggregate_type: 'order',
			aggregate_id: c.aggregate_id ?? `order-${c.name}`,
			version,
			event_type: c.event_type ?? 'Tested',
			event_id: eventId,
			correlation_id: c.correlation_id ?? eventId,
			causation_id: c.causation_id ?? eventId,
			timestamp: TS(n),
			metadata: c.metadata ?? {},
			data: c.data,
			prev
		}
		const bytes = encodeBlock(block)
		const cid = await cidOf(bytes, c.hash)

		/* The reference decoder (strict) accepts the bytes and gives the
		 * fields back, prev as the same CID. */
		const back = dagCbor.decode(bytes)
		assert.deepEqual(Object.keys(back).sort(), Object.keys(block).sort())
		if (prev === null) {
			assert.equal(back.prev, null)
		} else {
			assert.ok(CID.asCID(back.prev) && back.prev.equals(prev))
		}
		for (const k of ['aggregate_type', 'aggregate_id', 'version',
			'event_type', 'event_id', 'correlation_id', 'causation_id',
			'timestamp']) {
			assert.equal(back[k], block[k], `${c.name}: ${k}`)
		}
		assert.deepEqual(back.metadata, block.metadata)

		const dataJson = toJSON(block.data, '', null)
		checkDataJson(block.data, dataJson)

		events.push({
			name: c.name,
			hash: c.hash,
			block: { ...block, prev: prev === null ? null : prev.toString() },
			data_json: dataJson,
			block_hex: hex(bytes),
			cid: cid.toString()
		})
		prevCid = cid
	}

	/* Stand-alone CIDs, binary and text. */
	const cids = []
	const addCid = (name, cid) => {
		assert.ok(cid.toString().startsWith('b'))
		assert.ok(CID.parse(cid.toString()).equals(cid))
		assert.ok(CID.decode(cid.bytes).equals(cid))
		cids.push({ name, hex: hex(cid.bytes), text: cid.toString() })
	}
	const emptyMap = dagCbor.encode({})
	assert.equal(hex(emptyMap), 'a0')
	addCid('empty-map-sha2-256', await cidOf(emptyMap, 'sha2-256'))
	addCid('empty-map-blake2b-256', await cidOf(emptyMap, 'blake2b-256'))
	addCid('first-event-blake2b-256', CID.parse(events[0].cid))
	addCid('first-sha2-chain-event', CID.parse(events[3].cid))
	addCid('raw-codec-sha2-256',
		await cidOf(new TextEncoder().encode('cim-events'), 'sha2-256', RAW_CODE))

	const out = {
		comment: 'Made by make-vectors.mjs with @ipld/dag-cbor; do not edit by hand. ' +
			'Whole-number floats (2.0) are encoded as 64-bit floats (fb 4000000000000000).',
		generator: Object.fromEntries(['@ipld/dag-cbor', 'multiformats',
			'@multiformats/blake2', 'cborg'].map((p) => [p, installed(p)])),
		events,
		cids
	}
	const file = join(HERE, 'events.json')
	writeFileSync(file, toJSON(out) + '\n')
	console.log(`wrote ${file}: ${events.length} events, ${cids.length} cids`)
}

main().catch((e) => {
	console.error(e)
	process.exit(1)
})
