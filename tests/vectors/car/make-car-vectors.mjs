/*
 * make-car-vectors.mjs: independent test vectors for cim-events' seals,
 * public-key texts and CAR files, made without any of cim-events' code:
 *
 *   - Ed25519 by node's own crypto (OpenSSL), not libsodium;
 *   - did:key texts by multiformats' base58btc;
 *   - DAG-CBOR blocks and CIDs by @ipld/dag-cbor, multiformats and
 *     @multiformats/blake2;
 *   - CAR files by @ipld/car (CarWriter), read back by its CarReader;
 *   all pinned in package.json.
 *
 * Run: cd tests/vectors/car && npm install && node make-car-vectors.mjs
 *
 * Writes:
 *   ed25519.json  RFC 8032 section 7.1 TEST 1, 2, 3 and SHA(abc) (data
 *                 typed from the RFC, each checked here against node's
 *                 Ed25519); the did:key spec's Ed25519 test vectors (seeds
 *                 0 to 4, from w3c-ccg/did-method-key
 *                 test-vectors/ed25519-x25519.json), checked here; public
 *                 keys of 8 more seeds with their did:key text; and seals:
 *                 the signature of "cim-events-seal-v1" 0x00 CID-bytes by
 *                 a seed, as hex and as its Cim-Seal text (base64), with
 *                 the seal block and its CID.
 *   events.car    a CARv1 file of a blake2b-256 store: three aggregates
 *                 (order/o-1 with 3 events sealed after versions 2 and 3,
 *                 account/acc-7 with an encrypted aggregate's key block and
 *                 2 events whose data is a byte string, sealed at 2,
 *                 user/u-9 forgotten: its head a CimForgotten event, no key
 *                 block), roots their heads, each aggregate's blocks
 *                 together: key block, then each event followed by its seal.
 *   sha256.car    the same layout for a sha2-256 store (one aggregate).
 *   car.json      for each CAR file: its roots and its blocks (CID and
 *                 hex) in file order, the trusted key text, and the
 *                 counts a verifier must find.
 *
 * Every seed here is derived from a label (sha256), so running the script
 * again gives the same files.
 */

import * as dagCbor from '@ipld/dag-cbor'
import { CarWriter } from '@ipld/car/writer'
import { CarReader } from '@ipld/car/reader'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { base58btc } from 'multiformats/bases/base58'
import { blake2b256 } from '@multiformats/blake2/blake2b'
import crypto from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import assert from 'node:assert/strict'

const HERE = dirname(fileURLToPath(import.meta.url))
const DAG_CBOR = 0x71
const HASHERS = { 'blake2b-256': blake2b256, 'sha2-256': sha256 }

function installed (pkg) {
	const f = join(HERE, 'node_modules', pkg, 'package.json')
	return JSON.parse(readFileSync(f, 'utf8')).version
}

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'))
const label = (s) => new Uint8Array(crypto.createHash('sha256').update(s).digest())
const labelBytes = (s, n) =>
	new Uint8Array(crypto.createHash('sha512').update(s).digest()).slice(0, n)

/* ---- Ed25519 through node's crypto -------------------------------------- */

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')

function privateKey (seed) {
	return crypto.createPrivateKey({
		key: Buffer.concat([PKCS8_ED25519, Buffer.from(seed)]),
		format: 'der',
		type: 'pkcs8'
	})
}

function publicKey (seed) {
	const spki = crypto.createPublicKey(privateKey(seed)).export({ format: 'der', type: 'spki' })
	return new Uint8Array(spki.subarray(spki.length - 32))
}

function sign (seed, msg) {
	return new Uint8Array(crypto.sign(null, Buffer.from(msg), privateKey(seed)))
}

function verify (pk, msg, sig) {
	const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(pk)])
	const key = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' })
	return crypto.verify(null, Buffer.from(msg), key, Buffer.from(sig))
}

/* did:key text without "did:key:": base58btc (with its 'z') of 0xed 0x01 || pk */
function keyText (pk) {
	return base58btc.encode(new Uint8Array([0xed, 0x01, ...pk]))
}

function sealMessage (cid) {
	return new Uint8Array([...Buffer.from('cim-events-seal-v1'), 0, ...cid.bytes])
}

/* ---- RFC 8032, section 7.1 ---------------------------------------------- */

const RFC8032 = [
	{
		name: 'TEST 1',
		seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
		public_key: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
		message: '',
		signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
	},
	{
		name: 'TEST 2',
		seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
		public_key: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
		message: '72',
		signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'
	},
	{
		name: 'TEST 3',
		seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
		public_key: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
		message: 'af82',
		signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a'
	},
	{
		name: 'TEST SHA(abc)',
		seed: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
		public_key: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
		message: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
		signature: 'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704'
	}
]

for (const v of RFC8032) {
	assert.equal(hex(publicKey(unhex(v.seed))), v.public_key, v.name)
	assert.equal(hex(sign(unhex(v.seed), unhex(v.message))), v.signature, v.name)
	assert.ok(verify(unhex(v.public_key), unhex(v.message), unhex(v.signature)), v.name)
}
assert.equal(hex(crypto.createHash('sha512').update('abc').digest()), RFC8032[3].message)

/* ---- did:key, w3c-ccg/did-method-key test-vectors/ed25519-x25519.json ---- */

const DIDKEY = [
	['0000000000000000000000000000000000000000000000000000000000000000', 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp', '4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS'],
	['0000000000000000000000000000000000000000000000000000000000000001', 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG', '6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt'],
	['0000000000000000000000000000000000000000000000000000000000000002', 'did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf', '8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH'],
	['0000000000000000000000000000000000000000000000000000000000000003', 'did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ', 'HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2'],
	['0000000000000000000000000000000000000000000000000000000000000004', 'did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL', 'J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x']
]

const didkey = DIDKEY.map(([seed, did, b58]) => {
	const pk = publicKey(unhex(seed))
	assert.equal(base58btc.baseEncode(pk), b58, did)
	assert.equal('did:key:' + keyText(pk), did)
	return { seed, public_key: hex(pk), text: did.slice('did:key:'.length) }
})

const keys = []
for (let i = 0; i < 8; i++) {
	const seed = label(`cim-events vector key ${i}`)
	const pk = publicKey(seed)
	keys.push({ seed: hex(seed), public_key: hex(pk), text: keyText(pk) })
}

/* ---- blocks --------------------------------------------------------------- */

async function block (value, hash) {
	const bytes = dagCbor.encode(value)
	const cid = CID.create(1, DAG_CBOR, await HASHERS[hash].digest(bytes))
	return { cid, bytes }
}

async function sealBlock (seed, cid, hash) {
	const sig = sign(seed, sealMessage(cid))
	const pk = publicKey(seed)
	assert.ok(verify(pk, sealMessage(cid), sig))
	const b = await block({ cid, key: keyText(pk), sig }, hash)
	return { ...b, sig, key: keyText(pk) }
}

/* An aggregate's events: specs [{event_type, data}], chained by prev. */
async function chain (type, id, specs, hash, t0) {
	const out = []
	let prev = null
	for (let i = 0; i < specs.length; i++) {
		const eid = `0193a1b2-c3d4-7e5f-8a9b-${type.padEnd(6, '0').slice(0, 6)}${String(i + 1).padStart(6, '0')}`
		const value = {
			aggregate_type: type,
			aggregate_id: id,
			version: i + 1,
			event_type: specs[i].event_type,
			event_id: eid,
			correlation_id: eid,
			causation_id: eid,
			timestamp: `2026-11-23T0${t0}:00:0${i}.00000000${i}Z`,
			metadata: specs[i].metadata ?? {},
			data: specs[i].data,
			prev
		}
		const b = await block(value, hash)
		out.push(b)
		prev = b.cid
	}
	return out
}

/* Writes the CAR with @ipld/car and reads it back with its reader. */
async function writeCar (file, roots, blocks) {
	const { writer, out } = CarWriter.create(roots)
	const chunks = []
	const drained = (async () => { for await (const c of out) chunks.push(c) })()
	for (const b of blocks) await writer.put(b)
	await writer.close()
	await drained
	const bytes = new Uint8Array(Buffer.concat(chunks))
	writeFileSync(join(HERE, file), bytes)

	const reader = await CarReader.fromBytes(bytes)
	const got = (await reader.getRoots()).map(String)
	assert.deepEqual(got, roots.map(String))
	let n = 0
	for await (const b of reader.blocks()) {
		assert.equal(String(b.cid), String(blocks[n].cid))
		assert.equal(hex(b.bytes), hex(blocks[n].bytes))
		n++
	}
	assert.equal(n, blocks.length)
	return bytes
}

const storeSeed = label('cim-events vector store key')
const otherSeed = label('cim-events vector other key')

async function eventsCar () {
	const hash = 'blake2b-256'
	const blocks = []
	const roots = []
	const seals = []

	const order = await chain('order', 'o-1', [
		{ event_type: 'OrderPlaced', data: { total: 42, items: ['sku-1', 'sku-2'] } },
		{ event_type: 'OrderPaid', data: { amount: 42, via: 'card' }, metadata: { who: 'till-3' } },
		{ event_type: 'OrderShipped', data: { carrier: 'post', parcels: [1, 2] } }
	], hash, 1)
	/* appends: [1, 2] sealed at 2, then [3] sealed at 3 */
	const o2 = await sealBlock(storeSeed, order[1].cid, hash)
	const o3 = await sealBlock(storeSeed, order[2].cid, hash)
	blocks.push(order[0], order[1], o2, order[2], o3)
	seals.push(o2, o3)
	roots.push(order[2].cid)

	const keyBlock = await block({
		aggregate_type: 'account',
		aggregate_id: 'acc-7',
		nonce: labelBytes('cim-events vector nonce', 24),
		wrapped: labelBytes('cim-events vector wrapped', 48)
	}, hash)
	const account = await chain('account', 'acc-7', [
		{ event_type: 'AccountOpened', data: labelBytes('cim-events vector data 1', 24 + 40) },
		{ event_type: 'Deposited', data: labelBytes('cim-events vector data 2', 24 + 33) }
	], hash, 2)
	const a2 = await sealBlock(storeSeed, account[1].cid, hash)
	blocks.push(keyBlock, account[0], account[1], a2)
	seals.push(a2)
	roots.push(account[1].cid)

	const user = await chain('user', 'u-9', [
		{ event_type: 'UserRegistered', data: labelBytes('cim-events vector data 3', 24 + 20) },
		{ event_type: 'CimForgotten', data: {} }
	], hash, 3)
	const u1 = await sealBlock(storeSeed, user[0].cid, hash)
	const u2 = await sealBlock(storeSeed, user[1].cid, hash)
	blocks.push(user[0], u1, user[1], u2)
	seals.push(u1, u2)
	roots.push(user[1].cid)

	assert.equal(blocks.length, 7 + 5 + 1)
	await writeCar('events.car', roots, blocks)
	return {
		file: 'events.car',
		hash,
		trusted_key: keyText(publicKey(storeSeed)),
		other_key: keyText(publicKey(otherSeed)),
		counts: { roots: 3, aggregates: 3, events: 7, seals: 5, key_blocks: 1, blocks: blocks.length },
		roots: roots.map(String),
		blocks: blocks.map((b) => ({ cid: String(b.cid), hex: hex(b.bytes) })),
		seals: seals.map((s) => ({ cid: String(s.cid), key: s.key, sig: Buffer.from(s.sig).toString('base64') }))
	}
}

async function sha256Car () {
	const hash = 'sha2-256'
	const ev = await chain('ledger', 'l-2', [
		{ event_type: 'Opened', data: { limit: 1.5, tags: [] } },
		{ event_type: 'Posted', data: { amount: -3, memo: 'fee', big: 9007199254740993n } }
	], hash, 4)
	const s = await sealBlock(storeSeed, ev[1].cid, hash)
	const blocks = [ev[0], ev[1], s]
	await writeCar('sha256.car', [ev[1].cid], blocks)
	return {
		file: 'sha256.car',
		hash,
		trusted_key: keyText(publicKey(storeSeed)),
		other_key: keyText(publicKey(otherSeed)),
		counts: { roots: 1, aggregates: 1, events: 2, seals: 1, key_blocks: 0, blocks: blocks.length },
		roots: [String(ev[1].cid)],
		blocks: blocks.map((b) => ({ cid: String(b.cid), hex: hex(b.bytes) })),
		seals: [{ cid: String(s.cid), key: s.key, sig: Buffer.from(s.sig).toString('base64') }]
	}
}

const cars = [await eventsCar(), await sha256Car()]

/* ---- seals over assorted CIDs ----------------------------------------------- */

const sealCases = []
const sealTargets = [
	...cars[0].blocks.slice(0, 2).map((b) => CID.parse(b.cid)),
	CID.parse(cars[1].blocks[0].cid),
	CID.create(1, 0x55, await sha256.digest(new Uint8Array(0)))
]
for (let i = 0; i < sealTargets.length; i++) {
	for (const seedHex of [hex(storeSeed), keys[i].seed, RFC8032[i].seed]) {
		const seed = unhex(seedHex)
		const cid = sealTargets[i]
		const s = await sealBlock(seed, cid, 'blake2b-256')
		sealCases.push({
			seed: seedHex,
			key: keyText(publicKey(seed)),
			event_cid: String(cid),
			message: hex(sealMessage(cid)),
			signature: hex(s.sig),
			seal_text: Buffer.from(s.sig).toString('base64'),
			seal_block: hex(s.bytes),
			seal_block_cid: String(s.cid)
		})
	}
}

const generator = {
	node: process.version,
	openssl: process.versions.openssl,
	'@ipld/car': installed('@ipld/car'),
	'@ipld/dag-cbor': installed('@ipld/dag-cbor'),
	multiformats: installed('multiformats'),
	'@multiformats/blake2': installed('@multiformats/blake2')
}

writeFileSync(join(HERE, 'ed25519.json'), JSON.stringify({
	comment: 'Made by make-car-vectors.mjs with node crypto (OpenSSL Ed25519) and multiformats; do not edit by hand. rfc8032: RFC 8032 section 7.1; didkey: the did:key spec test vectors (Ed25519).',
	generator,
	rfc8032: RFC8032,
	didkey,
	keys,
	seals: sealCases
}, null, '\t') + '\n')

writeFileSync(join(HERE, 'car.json'), JSON.stringify({
	comment: 'Made by make-car-vectors.mjs with @ipld/car; do not edit by hand. Each CAR file with its roots and blocks in file order.',
	generator,
	cars
}, null, '\t') + '\n')

console.log(`ed25519.json: ${RFC8032.length} RFC 8032, ${didkey.length} did:key, ${keys.length} keys, ${sealCases.length} seals`)
for (const c of cars) console.log(`${c.file}: ${c.blocks.length} blocks, ${c.roots.length} roots`)
