#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/.

    python3 tests/fuzz/make-corpus.py      (from the repository root)

request/  request bodies: every example of docs/protocol.md, one of each
          kind, and tricky refusals (bad JSON, duplicate keys, NUL, lone
          surrogates, numbers out of range, too deep, too many events...);
          validate with keys; restore bodies of chained blocks of
          order/order-17 (the aggregate fuzz_request restores to), with
          seal blocks (of well-formed but made-up signatures) and a key
          block, and refusals (gaps, broken links, bad base64).
block/    the event blocks of tests/vectors/events.json and the snapshot
          blocks of tests/vectors/snapshots.json as binary files, blocks
          with byte strings and links in data, and refused DAG-CBOR
          (non-minimal heads, indefinite lengths, short floats, NaN, other
          tags, keys out of order, trailing bytes, prev/version mismatch).
cid/      the CIDs of tests/vectors in text and binary form, and refused
          ones (upper case, padding, other multibases, CIDv0, non-minimal
          varints, wrong digest length).
car/      the CAR files of tests/vectors/car (made by @ipld/car), cut
          short, with a byte changed, with a block left out, and bad
          headers (CARv2 pragma, version 2, keys out of order, no roots).
crypt/    from tests/vectors/crypt/crypt.json: key blocks, encrypted data
          and state values, encrypted event and snapshot blocks, and
          plaintexts, each behind fuzz_crypt's mode byte; and refusals
          (truncated, extra or missing keys, wrong lengths, flipped bits,
          values under another key).

Seed files have readable names; files libFuzzer adds with `make
fuzz-merge` are named by their SHA-1. Only seed-* files are rewritten here.
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
VECTORS = os.path.join(ROOT, "tests", "vectors")


def write(kind, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    d = os.path.join(OUT, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- a minimal canonical DAG-CBOR writer -------------------------------------

def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 1 << 8:
        return bytes([major << 5 | 24, n])
    if n < 1 << 16:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n < 1 << 32:
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


class Link:
    def __init__(self, cid):
        self.cid = cid


def cbor(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode("utf-8")
        return head(3, len(b)) + b
    if isinstance(v, Link):
        return head(6, 42) + cbor(b"\x00" + v.cid)
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return head(5, len(v)) + b"".join(cbor(k) + cbor(v[k]) for k in keys)
    raise TypeError(type(v))


# ---- base32 (multibase 'b') -------------------------------------------------------

def b32(data):
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    bits, acc, out = 0, 0, []
    for c in data:
        acc = acc << 8 | c
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(alphabet[acc >> bits & 31])
    if bits:
        out.append(alphabet[acc << (5 - bits) & 31])
    return "b" + "".join(out)


# ---- request bodies ------------------------------------------------------------

def requests():
    ok = {
        # docs/protocol.md, section 3 (append)
        "append-doc": '{"expected_version": 3,\n "events": [{"event_type": "OrderPlaced", "data": {"total": 42},\n             "event_id": "e-1", "correlation_id": "c-1", "causation_id": "k-1",\n             "metadata": {"user": "alice"}}]}',
        "append-no-stream": '{"expected_version":"no_stream","events":[{"event_type":"OrderPlaced","data":{"total":42,"items":["sku-1"]},"event_id":"evt-0001","metadata":{"user":"alice"}}]}',
        "append-exact": '{"expected_version":1,"events":[{"event_type":"ItemAdded","data":{"sku":"sku-2","price":9.5}}]}',
        "append-exists-two": '{"expected_version":"exists","events":[\n  {"event_type":"ItemAdded","data":{"sku":"sku-3","price":2.0},"event_id":"evt-0003","correlation_id":"req-77"},\n  {"event_type":"OrderConfirmed","data":null,"event_id":"evt-0004","correlation_id":"req-77","causation_id":"evt-0003"}]}',
        "append-any-exp": '{"events":[{"event_type":"OrderShipped","data":{"carrier":"dhl","weight":1e2}}]}',
        "append-cancel": '{"expected_version":3,"events":[{"event_type":"OrderCancelled","data":{}}]}',
        "append-any": '{"expected_version":"any","events":[{"event_type":"A_b-9","data":[1,-2,3.25,true,false,null,"x",{"":[]}]}]}',
        "append-zero": '{"expected_version":0,"events":[{"event_type":"X","data":"s"}]}',
        "append-nul": '{"events":[{"event_type":"X","data":{"\\u0000k":"a\\u0000b","k\\u0000":["\\u0000"]},"event_id":"\\u0000e","correlation_id":"","causation_id":"c\\u0000","metadata":{"m\\u0000":"\\u0000"}}]}',
        "append-nul-private-use": '{"events":[{"event_type":"X","data":{"\\u0000":1,"\\ue000":2,"\ue001\\u0000":3,"\\uE001\ue000":4}}]}',
        "append-unicode": '{"events":[{"event_type":"Named","data":{"name":"Gr\\u00fc\\u00dfe \u00e9\u4e2d\U0001f600 \\ud83d\\ude00","esc":"\\"\\\\\\/\\b\\f\\n\\r\\t"},"metadata":{"k\\u00e9y":"v","":""}}]}',
        "append-ints": '{"events":[{"event_type":"N","data":[0,23,24,255,256,65535,65536,4294967295,4294967296,9223372036854775807,-1,-24,-25,-256,-257,-9223372036854775808]}]}',
        "append-floats": '{"events":[{"event_type":"F","data":[0.1,-0.0,1.5e300,2.2250738585072014e-308,5e-324,1.7976931348623157e308,100.0]}]}',
        "append-three": '{"events":[{"event_type":"A","data":1,"event_id":"a"},{"event_type":"B","data":2,"event_id":"b"},{"event_type":"C","data":3}]}',
        "append-ids-max": '{"events":[{"event_type":"X","data":1,"event_id":"%s","correlation_id":"!~","causation_id":"%s"}]}' % ("a" * 128, "~" * 128),
        "append-depth-128": '{"events":[{"event_type":"X","data":%s}]}' % ("[" * 128 + "]" * 128),
        "append-keys-order": '{"events":[{"event_type":"K","data":{"bb":1,"a":2,"ab":3,"b":4,"aaa":5,"":6}}]}',
        # section 4 (get) and by_type
        "get-page": '{"from_version":1,"limit":2}',
        "get-from": '{"from_version":5}',
        "get-zero": '{"from_version":0,"limit":10000}',
        "bytype-page": '{"after_seq":2,"limit":2}',
        "bytype-limit": '{"limit":2}',
        # section 5 (snapshot.save)
        "snapshot-save": '{"version":2,"state":{"total":42,"lines":["a-1"]}}',
        "snapshot-empty": '{"version":1,"state":{}}',
        "snapshot-null": '{"version":9223372036854775807,"state":null}',
        "snapshot-deep": '{"version":3,"state":%s}' % ('{"a":' * 128 + "1" + "}" * 128),
        # section 12 (decrypt): data encrypted under fuzz_request's fixed
        # key (bytes 0x80..0x9f) by proto/crypt.c's cim_value_encrypt, for
        # event_ids e-1 and the UUID: both decrypt there
        "decrypt-two": '{"items":[{"aggregate_id":"c-1","event_id":"e-1","data":"mSqEO90OyqZ5L3iACYg3HsTsfNeDbwRnb2mSuPlcHGOfObA4r9pz9ZJuFlsgQu3mOyPzRxG8RK2Ar8CNczuy"},{"aggregate_id":"c-2","event_id":"01a23b01-b862-789b-977d-0a3061981dbf","data":"aPUb9s95e3GXgmE955iQ0EthyYetbKheSbgXZME40h2hPFWcrCwIL6uPY+nO"}]}',
        # requests without fields (head, validate, info, snapshot.get, load)
        "empty-object": "{}",
        "empty-body": "",
        "empty-spaces": " \n\t{ }\r\n",
    }
    bad = {
        "not-json": "not json",
        "not-object": "[1,2,3]",
        "string-root": '"events"',
        "extra-field": '{"events":[{"event_type":"X","data":1}],"extra":1}',
        "too-deep": '{"events":[{"event_type":"X","data":%s}]}' % ("[" * 129 + "]" * 129),
        "deep-json": "[" * 2100 + "]" * 2100,
        "event-id-null": '{"events":[{"event_type":"X","data":1,"event_id":null}]}',
        "event-id-space": '{"events":[{"event_type":"X","data":1,"event_id":"has space"}]}',
        "event-id-long": '{"events":[{"event_type":"X","data":1,"event_id":"%s"}]}' % ("a" * 129),
        "event-id-repeat": '{"events":[{"event_type":"X","data":1,"event_id":"a"},{"event_type":"X","data":1,"event_id":"a"}]}',
        "int-overflow": '{"events":[{"event_type":"X","data":{"n":9223372036854775808}}]}',
        "int-underflow": '{"events":[{"event_type":"X","data":[{"a":[1,{"b":-9223372036854775809}]}]}]}',
        "real-overflow": '{"events":[{"event_type":"X","data":{"x\\"y":[1e400]}}]}',
        "overflow-deep-path": '{"events":[{"event_type":"X","data":%s9e999%s}]}' % ('{"k":[' * 20, "]}" * 20),
        "overflow-top": '{"limit":99999999999999999999}',
        "limit-over": '{"limit":10001}',
        "limit-zero": '{"limit":0}',
        "limit-string": '{"limit":"1"}',
        "from-negative": '{"from_version":-1}',
        "from-real": '{"from_version":1.0}',
        "expected-negative": '{"expected_version":-1,"events":[{"event_type":"X","data":1}]}',
        "expected-keyword": '{"expected_version":"latest","events":[{"event_type":"X","data":1}]}',
        "expected-bool": '{"expected_version":true,"events":[{"event_type":"X","data":1}]}',
        "events-empty": '{"events":[]}',
        "events-object": '{"events":{"event_type":"X","data":1}}',
        "events-missing": '{"expected_version":"any"}',
        "event-not-object": '{"events":[1]}',
        "event-type-bad": '{"events":[{"event_type":"1X","data":1}]}',
        "event-type-long": '{"events":[{"event_type":"%s","data":1}]}' % ("A" * 65),
        "data-missing": '{"events":[{"event_type":"X"}]}',
        "metadata-not-string": '{"events":[{"event_type":"X","data":1,"metadata":{"a":"b","n":1}}]}',
        "metadata-array": '{"events":[{"event_type":"X","data":1,"metadata":["a"]}]}',
        "duplicate-key": '{"events":[{"event_type":"X","data":1}],"events":[]}',
        "duplicate-inner": '{"events":[{"event_type":"X","data":{"a":1,"a":2}}]}',
        "lone-surrogate": '{"events":[{"event_type":"X","data":"\\ud800"}]}',
        "raw-nul": b'{"events":[{"event_type":"X","data":"a\x00b"}]}',
        "bad-utf8": b'{"events":[{"event_type":"X","data":"\xc0\xaf \xed\xa0\x80 \xff"}]}',
        "bom": b'\xef\xbb\xbf{}',
        "trailing": '{} {}',
        "snapshot-no-state": '{"version":1}',
        "snapshot-version-zero": '{"version":0,"state":1}',
        "snapshot-too-deep": '{"version":1,"state":%s}' % ("[" * 129 + "]" * 129),
        "unterminated": '{"events":[{"event_type":"X","data":"abc',
        "decrypt-empty": '{"items":[]}',
        "decrypt-bad-base64": '{"items":[{"aggregate_id":"c-1","event_id":"e","data":"@@"}]}',
        "decrypt-short": '{"items":[{"aggregate_id":"c-1","event_id":"e","data":"AAAA"}]}',
        "decrypt-bad-id": '{"items":[{"aggregate_id":"c 1","event_id":"e","data":"AAAA"}]}',
        "too-many-events": '{"events":[%s]}' % ",".join(['{"event_type":"X","data":1}'] * 1001),
    }
    for name, body in ok.items():
        write("request", name, body)
    for name, body in bad.items():
        write("request", "bad-" + name, body)


# ---- blocks -----------------------------------------------------------------------

def event(version=1, prev=None, data=None, metadata=None, **kw):
    b = {
        "data": data, "prev": prev, "version": version,
        "event_id": "evt-1", "metadata": metadata if metadata is not None else {},
        "timestamp": "2026-11-22T10:00:00.000000000Z", "event_type": "E",
        "aggregate_id": "a-1", "causation_id": "evt-1",
        "aggregate_type": "t", "correlation_id": "evt-1",
    }
    b.update(kw)
    return b


def blocks(cids):
    with open(os.path.join(VECTORS, "events.json")) as f:
        ev = json.load(f)
    for e in ev["events"]:
        write("block", "event-" + e["name"], bytes.fromhex(e["block_hex"]))
    with open(os.path.join(VECTORS, "snapshots.json")) as f:
        sn = json.load(f)
    for c in sn["cases"]:
        name = c["name"].replace(" ", "-").replace(",", "")
        write("block", "snapshot-" + name, bytes.fromhex(c["block_hex"]))

    link = Link(cids[0])
    ok = {
        "bytes-in-data": event(data={"blob": b"\x00\x01\xff", "empty": b""}),
        "link-in-data": event(data=[link, {"/": "not a link"}]),
        "prev-sha2": event(version=2, prev=Link(cids[1]), data={"n": -1}),
        "metadata-many": event(data=1.5, metadata={"a": "1", "bb": "", "user": "alice"}),
        "version-max": event(version=2**64 - 1, prev=link, data=True),
        "key-nul-in-data": event(data={"a\x00b": "c\x00d"}),
        "metadata-nul": event(data=None, metadata={"k\x00": "v\x00"}),
        "ids-nul": event(data=1, event_id="\x00e\x00", correlation_id="", causation_id="c\x00"),
        "deep-data": event(data=json.loads("[" * 128 + "]" * 128)),
    }
    for name, b in ok.items():
        write("block", "event-" + name, cbor(b))
    deep = b"\x00"
    for _ in range(127):
        deep = [deep]
    # bytes at depth 127 of data: {"/": {"bytes": ...}} is two levels more
    write("block", "event-deep-bytes", cbor(event(data=deep)))
    write("block", "value-all-kinds", cbor([0, 24, 256, 65536, 2**32, 2**63 - 1, -1, -2**63, 1.0, -0.0,
                                            "", "\u00e9\U0001f600", b"", b"\x01", True, False, None,
                                            {"": {}, "a": []}, link]))
    snap = {"state": {"n": 1}, "version": 2, "event_cid": link,
            "timestamp": "2026-11-22T10:00:00.000000000Z",
            "aggregate_id": "a-1", "aggregate_type": "t"}
    write("block", "snapshot-bytes-state", cbor(dict(snap, state={"b": b"\x01\x02"})))
    write("block", "snapshot-link-state", cbor(dict(snap, state=[link])))

    good = cbor(event(data={"total": 42}))
    bad = {
        "truncated": good[:-3],
        "trailing": good + b"\x00",
        "empty": b"",
        "map-12": b"\xac" + good[1:],
        "version1-prev": cbor(event(version=1, prev=link)),
        "version2-null": cbor(event(version=2, prev=None)),
        "version0": cbor(event(version=0)),
        "version-negative": cbor(event(version=-1)),
        "prev-bytes": cbor(event(version=2, prev=b"\x00" + cids[0])),
        "prev-no-prefix": cbor(event(version=2, prev=b"")).replace(b"\x64prev\x40", b"\x64prev\xd8\x2a\x58" + bytes([len(cids[0])]) + cids[0]),
        "metadata-int": cbor(event(metadata={"a": 1})),
        "metadata-link": cbor(event(metadata={"a": link})),
        "text-nul": cbor(event(event_type="E\x00")),
        "type-int": cbor(event(aggregate_type=7)),
        "extra-key": cbor(dict(event(), zzzzzzzzzzzzzzz="x")),
        "too-deep": cbor(event(data=json.loads("[" * 129 + "]" * 129))),
        "int-over-int64": cbor(event(data=2**63)),
        "negint-under-int64": cbor(event(data=-2**63 - 1)),
        "non-minimal-uint": good.replace(b"\x18\x2a", b"\x19\x00\x2a"),
        "non-minimal-len": good.replace(b"\x65total", b"\x78\x05total"),
        "indefinite-map": b"\xbf\x61a\x01\xff",
        "indefinite-text": b"\x7f\x61a\xff",
        "half-float": b"\xf9\x3c\x00",
        "single-float": b"\xfa\x3f\x80\x00\x00",
        "nan": b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",
        "infinity": b"\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00",
        "undefined": b"\xf7",
        "simple-16": b"\xf0",
        "break": b"\xff",
        "tag-43": b"\xd8\x2b\x41\x00",
        "tag-42-text": b"\xd8\x2a\x61a",
        "keys-unordered": b"\xa2\x61b\x01\x61a\x02",
        "keys-repeated": b"\xa2\x61a\x01\x61a\x02",
        "key-int": b"\xa1\x01\x02",
        "utf8-surrogate": b"\x63\xed\xa0\x80",
        "utf8-overlong": b"\x62\xc0\xaf",
        "huge-length": b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",
        "huge-array": b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00",
    }
    for name, b in bad.items():
        write("block", "bad-" + name, b)
    write("block", "bad-snapshot-version0", cbor(dict(snap, version=0)))
    # a finding of fuzz_block (fixed): a refused snapshot must leave nothing set
    write("block", "bad-snapshot-no-link", cbor(dict(snap, event_cid="x")))
    write("block", "bad-snapshot-five-keys", cbor({k: v for k, v in snap.items() if k != "timestamp"}))


# ---- CIDs -------------------------------------------------------------------------

def cid_seeds():
    with open(os.path.join(VECTORS, "events.json")) as f:
        ev = json.load(f)
    bins = []
    for c in ev["cids"]:
        b = bytes.fromhex(c["hex"])
        assert b32(b) == c["text"], c["name"]
        bins.append(b)
        write("cid", "text-" + c["name"], c["text"])
        write("cid", "bin-" + c["name"], b)
    blake = bins[1]
    sha = bins[0]
    bad = {
        "text-upper": "B" + b32(blake)[1:].upper(),
        "text-padded": b32(sha) + "====",
        "text-base58": "zdpuAyvkgEDQm9TenwGkd5eNaosSxjgEYd8QatfPetgB1CdEZ",
        "text-cidv0": "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",
        "text-truncated": b32(blake)[:-1],
        "text-stray-bits": b32(sha)[:-1] + "b",
        "text-empty": "",
        "text-b": "b",
        "text-nul": b32(blake) + "\x00tail",
        "bin-version0": b"\x00" + sha[1:],
        "bin-version2": b"\x02" + sha[1:],
        "bin-nonminimal-codec": b"\x01\xf1\x00" + sha[2:],
        "bin-long-varint": b"\x01" + b"\xff" * 9 + b"\x01" + sha[2:],
        "bin-digest-short": sha[:-1],
        "bin-digest-long": sha + b"\x00",
        "bin-digest-len0": b"\x01\x71\x12\x00",
        "bin-too-long": b"\x01\x71\x12\x4d" + b"\x00" * 77,
        "bin-empty": b"",
        "struct-len80": bytes([80]) + b"\x01\x71\x12\x4c" + b"\x00" * 76,
        "struct-len255": b"\xff" + sha,
        "hash-name": "blake2b-256",
        "hash-name-sha": "sha2-256",
        "base32-all": "abcdefghijklmnopqrstuvwxyz234567",
    }
    # the longest accepted binary CID (80 bytes) and one past it
    write("cid", "bin-longest", b"\x01\x71\x12\x4c" + b"\x00" * 76)
    write("cid", "text-longest", b32(b"\x01\x71\x12\x4c" + b"\x00" * 76))
    for name, v in bad.items():
        write("cid", "bad-" + name, v)
    return bins


# ---- CAR files ----------------------------------------------------------------------

def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def car_seeds():
    with open(os.path.join(VECTORS, "car", "car.json")) as f:
        cars = json.load(f)["cars"]
    for c in cars:
        name = c["file"].replace(".car", "")
        with open(os.path.join(VECTORS, "car", c["file"]), "rb") as f:
            data = f.read()
        write("car", name, data)
        write("car", name + "-cut", data[: len(data) * 2 // 3])
        changed = bytearray(data)
        changed[-1] ^= 1
        write("car", name + "-changed", bytes(changed))
        hlen, shift, i = 0, 0, 0
        while True:
            hlen |= (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                break
        header = data[: i + hlen]
        sections = b""
        for i, blk in enumerate(c["blocks"]):
            if i == 1:
                continue  # a block left out
            cid = b32_decode(blk["cid"][1:])
            body = cid + bytes.fromhex(blk["hex"])
            sections += uvarint(len(body)) + body
        write("car", name + "-missing", header + sections)
    empty_roots = cbor({"roots": [], "version": 1})
    write("car", "empty-roots", uvarint(len(empty_roots)) + empty_roots)
    v2 = cbor({"version": 2})
    write("car", "bad-carv2-pragma", uvarint(len(v2)) + v2)
    h = cbor({"roots": [], "version": 2})
    write("car", "bad-version-2", uvarint(len(h)) + h)
    h = b"\xa2" + cbor("version") + cbor(1) + cbor("roots") + cbor([])
    write("car", "bad-key-order", uvarint(len(h)) + h)
    h = cbor({"version": 1})
    write("car", "bad-no-roots", uvarint(len(h)) + h)
    write("car", "bad-long-varint", b"\xff" * 10)
    write("car", "bad-empty", b"")


def b32_decode(s):
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    bits = 0
    acc = 0
    out = bytearray()
    for ch in s:
        acc = (acc << 5) | alphabet.index(ch)
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)
# ---- encrypted aggregates -------------------------------------------------------

def crypt_seeds():
    """fuzz_crypt's inputs: a mode byte, then what that mode reads (see
    fuzz_crypt.c). The target's keys are the vectors' master key and
    customer/cust-1's data key, so these seeds decrypt."""
    with open(os.path.join(VECTORS, "crypt", "crypt.json")) as f:
        cv = json.load(f)
    dek = cv["events"][0]["data_key"]
    for k in cv["keys"]:
        name = k["name"].replace(" ", "-")
        blk = bytes.fromhex(k["block_hex"])
        write("crypt", "keyblock-" + name, b"\x00" + blk)
        write("crypt", "bad-keyblock-truncated-" + name, b"\x00" + blk[:-1])
    w = {"nonce": bytes(24), "wrapped": bytes(48), "aggregate_id": "a-1", "aggregate_type": "t"}
    write("crypt", "bad-keyblock-extra-key", b"\x00" + cbor(dict(w, zzz=1)))
    write("crypt", "bad-keyblock-missing-key", b"\x00" + cbor({k: v for k, v in w.items() if k != "nonce"}))
    write("crypt", "bad-keyblock-nonce-23", b"\x00" + cbor(dict(w, nonce=bytes(23))))
    write("crypt", "bad-keyblock-wrapped-text", b"\x00" + cbor(dict(w, wrapped="x" * 48)))
    write("crypt", "bad-keyblock-bad-id", b"\x00" + cbor(dict(w, aggregate_id="a b")))
    for e in cv["events"]:
        name = e["name"].replace(" ", "-").replace(",", "")
        write("crypt", "event-" + name, b"\x03" + bytes.fromhex(e["block_hex"]))
        if e["data_key"] != dek:
            continue
        eid = e["block"]["event_id"].encode()
        enc = bytes.fromhex(e["enc"])
        write("crypt", "data-" + name, b"\x01" + bytes([len(eid)]) + eid + enc)
        flipped = enc[:30] + bytes([enc[30] ^ 1]) + enc[31:]
        write("crypt", "bad-data-flipped-" + name, b"\x01" + bytes([len(eid)]) + eid + flipped)
        write("crypt", "bad-data-short-" + name, b"\x01" + bytes([len(eid)]) + eid + enc[:39])
    for s in cv["snapshots"]:
        name = s["name"].replace(" ", "-").replace(",", "")
        write("crypt", "snapshot-" + name, b"\x03" + bytes.fromhex(s["block_hex"]))
        if s["data_key"] != dek:
            continue
        t, i = s["aggregate_type"].encode(), s["aggregate_id"].encode()
        write("crypt", "state-" + name, b"\x02" + bytes([len(t)]) + t + bytes([len(i)]) + i +
              bytes.fromhex(s["enc"]))
    for v in cv["values"]:
        name = v["name"].replace(" ", "-").replace(",", "")
        write("crypt", "plain-" + name, b"\x04" + bytes.fromhex(v["plaintext"]))
        if v["kind"] == "data":  # under another key: refused
            eid = bytes.fromhex(v["event_id_hex"])
            write("crypt", "other-key-" + name, b"\x01" + bytes([len(eid)]) + eid + bytes.fromhex(v["enc"]))
    write("crypt", "bad-plain-two-values", b"\x04\x01\x02")
    write("crypt", "bad-plain-non-minimal", b"\x04\x18\x01")
    write("crypt", "bad-plain-empty", b"\x04")
    write("crypt", "bad-state-nul-type", b"\x02\x03t\x00u\x01x" + bytes(40))


# ---- restore and validate bodies ------------------------------------------------

def cid_of(block):
    import hashlib
    # CIDv1, dag-cbor, blake2b-256 (multihash code 0xb220: varint a0 e4 02)
    return b"\x01\x71\xa0\xe4\x02\x20" + hashlib.blake2b(block, digest_size=32).digest()


def restore_seeds():
    import base64

    def b64(b):
        return base64.b64encode(b).decode()

    chain, prev = [], None
    for v in range(1, 4):
        b = cbor(event(version=v, prev=Link(prev) if prev else None, data={"n": v},
                       aggregate_type="order", aggregate_id="order-17",
                       event_id="e-%d" % v, causation_id="e-%d" % v,
                       correlation_id="e-%d" % v))
        chain.append(b)
        prev = cid_of(b)
    seal = cbor({"cid": Link(cid_of(chain[2])), "key":
                 "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "sig": bytes(64)})
    key = cbor({"nonce": bytes(24), "wrapped": bytes(48), "aggregate_id": "order-17",
                "aggregate_type": "order"})
    blocks = json.dumps([b64(b) for b in chain])
    ok = {
        "restore-3": '{"blocks":%s}' % blocks,
        "restore-1": '{"blocks":["%s"]}' % b64(chain[0]),
        "restore-seal": '{"blocks":%s,"seals":["%s"]}' % (blocks, b64(seal)),
        "restore-key": '{"blocks":%s,"key":"%s"}' % (blocks, b64(key)),
        "validate-keys": '{"keys":["z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"]}',
        "validate-no-keys": '{"keys":[]}',
    }
    bad = {
        "restore-gap": '{"blocks":["%s","%s"]}' % (b64(chain[0]), b64(chain[2])),
        "restore-not-base64": '{"blocks":["%s","!!!!"]}' % b64(chain[0]),
        "restore-other-block": '{"blocks":["%s"]}' % b64(seal),
        "restore-empty": '{"blocks":[]}',
        "validate-key-text": '{"keys":["did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"]}',
    }
    for name, body in ok.items():
        write("request", name, body)
    for name, body in bad.items():
        write("request", "bad-" + name, body)


def main():
    if not os.path.isdir(VECTORS):
        sys.exit("run from the repository (tests/vectors not found)")
    bins = cid_seeds()
    requests()
    restore_seeds()
    blocks([bins[1], bins[0]])
    car_seeds()
    crypt_seeds()


if __name__ == "__main__":
    main()
