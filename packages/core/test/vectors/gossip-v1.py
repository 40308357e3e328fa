#!/usr/bin/env python3
"""Golden vectors for PeaPod gossip (docs/protocol.md section 11), written from the spec alone.

Independent of the TypeScript code: the layouts below are transcribed from the spec's tables, and
Ed25519 is the RFC 8032 section 6 reference algorithm (pure Python, only hashlib). Ed25519 is
deterministic, so the same seeds always give the same bytes.

Usage: python3 gossip-v1.py > gossip-v1.json
"""
import hashlib
import json
import struct

# ---- Ed25519, RFC 8032 section 6 ---------------------------------------------------------------
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def sha512(data):
    return hashlib.sha512(data).digest()


def point_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = t1 * 2 * D * t2 % P
    Dd = z1 * 2 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def point_mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = point_add(q, pt)
        pt = point_add(pt, pt)
        s >>= 1
    return q


def recover_x(y, sign):
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if x & 1 != sign:
        x = P - x
    return x


G_Y = 4 * pow(5, P - 2, P) % P
G_X = recover_x(G_Y, 0)
G = (G_X, G_Y, 1, G_X * G_Y % P)


def compress(pt):
    zinv = pow(pt[2], P - 2, P)
    x, y = pt[0] * zinv % P, pt[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, 'little')


def secret_expand(seed):
    h = sha512(seed)
    a = int.from_bytes(h[:32], 'little')
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed):
    a, _ = secret_expand(seed)
    return compress(point_mul(a, G))


def sign(seed, msg):
    a, prefix = secret_expand(seed)
    A = compress(point_mul(a, G))
    r = int.from_bytes(sha512(prefix + msg), 'little') % L
    R = compress(point_mul(r, G))
    h = int.from_bytes(sha512(R + A + msg), 'little') % L
    s = (r + h * a) % L
    return R + int.to_bytes(s, 32, 'little')


# RFC 8032 section 7.1 TEST 1 and TEST 2: the implementation above must reproduce them.
assert public_key(bytes.fromhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')).hex() == \
    'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
assert sign(bytes.fromhex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'), b'\x72').hex() == \
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da' \
    '085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'

# ---- Peer records, section 11.2 -----------------------------------------------------------------
FLAG_BROADCAST, FLAG_BOOTSTRAP, FLAG_LEAVING = 1, 2, 4


def u8(v):
    return struct.pack('>B', v)


def u16(v):
    return struct.pack('>H', v)


def u32(v):
    return struct.pack('>I', v)


def u64(v):
    return struct.pack('>Q', v)


def peer_record(seed, issued_at_ms, flags, capabilities, listen_port, name, addresses):
    name_bytes = name.encode('utf-8')
    signed = u8(1) + public_key(seed) + u64(issued_at_ms) + u8(flags) + u32(capabilities) + \
        u16(listen_port) + u8(len(name_bytes)) + name_bytes + u8(len(addresses))
    for host in addresses:
        h = host.encode('ascii')
        signed += u8(len(h)) + h
    return signed + sign(seed, b'PeaPod/1 peer-record' + signed)


# ---- Gossip envelope and bodies, sections 11.1 and 11.3 ----------------------------------------
ANNOUNCEMENT, REQUEST, LIST_RESPONSE, UPDATE, HEARTBEAT, CONTENT = 0x40, 0x41, 0x42, 0x43, 0x44, 0x45


def gossip(seed, code, ttl, initial_ttl, message_id, timestamp_ms, type_body):
    after_ttl = message_id + public_key(seed) + u64(timestamp_ms) + u8(initial_ttl) + type_body
    signature = sign(seed, b'PeaPod/1 gossip' + u8(code) + after_ttl)
    return u8(ttl) + after_ttl + signature


def seed_of(label):
    return hashlib.sha256(('PeaPod gossip vector ' + label).encode()).digest()


SEED_A, SEED_B = seed_of('alpha'), seed_of('bravo')
T0 = 1767225600000  # 2026-01-01T00:00:00Z
# Gossip names a content by its blinded lookup key, SHA-256("peapod/lookup/v1" || content ID)
# (protocol.md 11.7), never by the ID: the vectors carry the keys of two example content IDs.
CONTENT_ID_1 = hashlib.sha256(b'content one').digest()
CONTENT_ID_2 = hashlib.sha256(b'content two').digest()
CONTENT_1 = hashlib.sha256(b'peapod/lookup/v1' + CONTENT_ID_1).digest()
CONTENT_2 = hashlib.sha256(b'peapod/lookup/v1' + CONTENT_ID_2).digest()

keys = [
    {'name': 'alpha', 'seed': SEED_A.hex(), 'publicKey': public_key(SEED_A).hex()},
    {'name': 'bravo', 'seed': SEED_B.hex(), 'publicKey': public_key(SEED_B).hex()},
]

record_specs = [
    ('alpha broadcasting bootstrap node with three addresses', 'alpha', SEED_A,
     dict(issuedAtMs=T0, broadcast=True, bootstrap=True, leaving=False, capabilities=8,
          listenPort=9000, deviceName='alpha \u00e9t\u00e9',
          addresses=['192.0.2.10', '2001:db8::1', 'peer.example.org'])),
    ('bravo silent (no address, the IP-sharing rule)', 'bravo', SEED_B,
     dict(issuedAtMs=T0 + 5, broadcast=False, bootstrap=False, leaving=False, capabilities=8,
          listenPort=9000, deviceName='bravo', addresses=[])),
    ('bravo leaving', 'bravo', SEED_B,
     dict(issuedAtMs=T0 + 60000, broadcast=False, bootstrap=False, leaving=True, capabilities=0,
          listenPort=0, deviceName='', addresses=[])),
]
records = []
record_bytes = {}
for name, key, seed, f in record_specs:
    flags = (FLAG_BROADCAST if f['broadcast'] else 0) | (FLAG_BOOTSTRAP if f['bootstrap'] else 0) | \
        (FLAG_LEAVING if f['leaving'] else 0)
    b = peer_record(seed, f['issuedAtMs'], flags, f['capabilities'], f['listenPort'],
                    f['deviceName'], f['addresses'])
    record_bytes[name] = b
    records.append({'name': name, 'key': key, 'fields': f, 'bytes': b.hex()})

REC_A, REC_B, REC_B_LEAVING = (record_bytes[s[0]] for s in record_specs)


def mid(n):
    return bytes([n]) * 16


def prefixed(b):
    return u16(len(b)) + b


messages = []


def add(name, key, seed, code, ttl, initial_ttl, message_id, ts, type_body, fields):
    body = gossip(seed, code, ttl, initial_ttl, message_id, ts, type_body)
    messages.append({
        'name': name, 'key': key,
        'message': dict(code=code, ttl=ttl, initialTtl=initial_ttl, messageId=message_id.hex(),
                        timestampMs=ts, **fields),
        'body': body.hex(),
    })


add('PEER_ANNOUNCEMENT of alpha, straight from its origin', 'alpha', SEED_A, ANNOUNCEMENT, 32, 32,
    mid(1), T0 + 1000, prefixed(REC_A), {'record': REC_A.hex()})
add('PEER_UPDATE of bravo, leaving, relayed 12 times', 'bravo', SEED_B, UPDATE, 20, 32, mid(2), T0 + 60000,
    prefixed(REC_B_LEAVING), {'record': REC_B_LEAVING.hex()})
add('PEER_REQUEST for peers holding a content', 'bravo', SEED_B, REQUEST, 16, 16, mid(3), T0 + 2000,
    u8(1) + CONTENT_1 + u8(8), {'lookupKey': CONTENT_1.hex(), 'contentId': CONTENT_ID_1.hex(), 'maxResults': 8})
add('PEER_REQUEST for any peers, on its last hop', 'alpha', SEED_A, REQUEST, 1, 16, mid(4), T0 + 2001,
    u8(0) + u8(16), {'lookupKey': None, 'maxResults': 16})
add('PEER_LIST_RESPONSE answering request 03..03', 'alpha', SEED_A, LIST_RESPONSE, 16, 16, mid(5),
    T0 + 2500, mid(3) + u8(2) + prefixed(REC_A) + prefixed(REC_B),
    {'requestId': mid(3).hex(), 'records': [REC_A.hex(), REC_B.hex()]})
add('PEER_LIST_RESPONSE table sync on a new link (requestId zero)', 'bravo', SEED_B, LIST_RESPONSE, 1, 1,
    mid(6), T0 + 3000, bytes(16) + u8(1) + prefixed(REC_A),
    {'requestId': bytes(16).hex(), 'records': [REC_A.hex()]})
add('PEER_LIST_RESPONSE, empty', 'bravo', SEED_B, LIST_RESPONSE, 1, 1, mid(7), T0 + 3001,
    bytes(16) + u8(0), {'requestId': bytes(16).hex(), 'records': []})
add('HEARTBEAT (2 hops)', 'alpha', SEED_A, HEARTBEAT, 2, 2, mid(8), T0 + 30000, b'', {})
add('CONTENT_AVAILABILITY: holds one, dropped another', 'alpha', SEED_A, CONTENT, 32, 32, mid(9),
    T0 + 4000, u8(2) + CONTENT_1 + u8(1) + CONTENT_2 + u8(0),
    {'entries': [{'lookupKey': CONTENT_1.hex(), 'contentId': CONTENT_ID_1.hex(), 'held': True},
                 {'lookupKey': CONTENT_2.hex(), 'contentId': CONTENT_ID_2.hex(), 'held': False}]})

print(json.dumps({'keys': keys, 'records': records, 'messages': messages}, indent=2,
                 ensure_ascii=False))
