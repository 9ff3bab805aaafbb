#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the hand-built seed inputs of the fuzz corpora (tests/fuzz/corpus/<target>/seed-*), so they can be
made again and read: TPMS_ATTEST quotes, crypto-agile event logs (plain and gzip), LUKS2 token JSON of both
formats, escrow blobs (AttestVolumeKeyData, EveVaultEscrow), and the mode-byte seeds of the configd, controller
response and evc targets (from the proto-unpack seeds). Crashes found by fuzzing are added beside them as
crash-* files by hand. Usage: tests/fuzz/make-seeds.py [CORPUS_DIR]"""
import base64
import gzip
import hashlib
import os
import struct
import sys

top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def write(target, name, data):
    d = os.path.join(top, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- TPMS_ATTEST (big-endian, TPM 2.0 part 2) ----
def tpms_attest(nonce, selections, digest, magic=0xFF544347, typ=0x8018):
    b = struct.pack(">IH", magic, typ)
    b += struct.pack(">H", 34) + struct.pack(">H", 0x000B) + b"\xaa" * 32  # qualifiedSigner
    b += struct.pack(">H", len(nonce)) + nonce
    b += struct.pack(">QIIB", 123456789, 7, 3, 1)  # clockInfo
    b += struct.pack(">Q", 0x2019062000000000)  # firmwareVersion
    b += struct.pack(">I", len(selections))
    for alg, mask in selections:
        b += struct.pack(">HB", alg, 3) + bytes([mask & 0xFF, (mask >> 8) & 0xFF, (mask >> 16) & 0xFF])
    b += struct.pack(">H", len(digest)) + digest
    return b


write("tpms-attest", "quote-pcr0-15", tpms_attest(b"\x5a" * 32, [(0x000B, 0xFFFF)], b"\x11" * 32))
write("tpms-attest", "quote-two-banks", tpms_attest(b"n" * 12, [(0x0004, 0x1), (0x000B, 0x4091)], b"\x22" * 32))
write("tpms-attest", "certify-type", tpms_attest(b"", [(0x000B, 1)], b"\x33" * 32, typ=0x8017))


# ---- TCG crypto-agile event log (little-endian) ----
def spec_id_event():
    ev = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 2)
    ev += struct.pack("<HH", 0x0004, 20) + struct.pack("<HH", 0x000B, 32) + b"\0"
    return struct.pack("<II", 0, 3) + b"\0" * 20 + struct.pack("<I", len(ev)) + ev


def event(pcr, typ, data, sha256=None):
    d = sha256 or hashlib.sha256(data).digest()
    return (struct.pack("<III", pcr, typ, 2) + struct.pack("<H", 0x0004) + hashlib.sha1(data).digest()
            + struct.pack("<H", 0x000B) + d + struct.pack("<I", len(data)) + data)


def startup_locality(loc):
    ev = b"StartupLocality\0" + bytes([loc])
    return struct.pack("<III", 0, 3, 1) + struct.pack("<H", 0x000B) + b"\0" * 32 + struct.pack("<I", len(ev)) + ev


log = spec_id_event() + startup_locality(3) + event(0, 0x80000008, b"firmware") + \
    event(4, 0x80000003, b"bootloader") + event(4, 0x80000003, b"kernel") + event(7, 0x800000E0, b"secureboot")
write("eventlog", "plain", log)
write("eventlog", "gzip", gzip.compress(log, mtime=0))
write("eventlog", "spec-only", spec_id_event())

# ---- LUKS2 tokens (JSON) ----
def tpm2b(b):
    return struct.pack(">H", len(b)) + b


# TPM2B_PRIVATE (opaque here) ‖ TPM2B_PUBLIC of a sealed keyedhash object with a PolicyPCR policy.
public = struct.pack(">HHI", 0x0008, 0x000B, 0x00000012) + tpm2b(b"\xab" * 32) + struct.pack(">H", 0x0010) + \
    tpm2b(b"\x5c" * 32)
blob = base64.b64encode(tpm2b(b"\x01" * 126) + tpm2b(public)).decode()
write("luks2-tokens", "systemd-tpm2",
      '{"type":"systemd-tpm2","keyslots":["1"],"tpm2-blob":"%s","tpm2-pcrs":[0,2,4,7,14],'
      '"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"%s","tpm2-pin":false,'
      '"tpm2_srk":"gQAAAQAiAAs="}' % (blob, "ab" * 32))
write("luks2-tokens", "systemd-tpm2-252",
      '{"type":"systemd-tpm2","keyslots":["0"],"tpm2-blob":"%s","tpm2-pcrs":[7],'
      '"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"%s","tpm2-pin":false}'
      % (blob, "cd" * 32))
pcr_values = '{"0":"%s","1":"%s","7":"%s","14":"%s"}' % ("00" * 32, "11" * 32, "77" * 32, "ee" * 32)
eve = ('{"type":"eve-vault","keyslots":[],"eve_version":1,"name":"image",'
       '"uuid":"5f3e6c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b","generation":3,"key_source":"%s","keyslot":1,'
       '"pcrs":[0,1,7,14],"pcr_source":"default","escrow":"pending","pcr_values":%s,"rotation":%s}')
write("luks2-tokens", "eve-vault", eve % ("tpm", pcr_values, '{"step":"none"}'))
write("luks2-tokens", "eve-vault-rotating",
      eve % ("tpm+controller", pcr_values, '{"step":"sealed","new_generation":4,"new_keyslot":2}'))


# ---- escrow blobs (protobuf wire format) ----
def varint(v):
    out = b""
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out += bytes([c | 0x80])
        else:
            return out + bytes([c])


def field(num, wt, payload):
    key = varint((num << 3) | wt)
    if wt == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


data_v1 = field(1, 2, bytes(range(60))) + field(2, 2, hashlib.sha256(b"k" * 32).digest()) + field(5, 0, 1)
write("escrow-blob", "v1", data_v1)
write("escrow-blob", "legacy", field(1, 2, b"\x42" * 32) + field(2, 2, b"\x24" * 32))
write("escrow-blob", "unknown-fields", data_v1 + field(9, 2, b"future") + field(10, 0, 7))


# ---- seeds of the targets that take a mode byte first (fuzz-configd-*, fuzz-controller-response,
# fuzz-evc-*): built from the protobuf seeds of proto-unpack (real messages of each kind) ----
# They are read from the corpus in the tree (committed as they are; this script does not write them), so that
# writing into another, empty directory works too.
tree_corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def proto_seed(name):
    path = os.path.join(tree_corpus, "proto-unpack", name)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        sys.exit(f"make-seeds.py: cannot read the protobuf seed {path}: {e.strerror}")


def store_file(payload):
    return b"EVECFG1\n" + struct.pack("<Q", len(payload)) + hashlib.sha256(payload).digest() + payload


cipher_block = field(1, 2, b"ctx-1") + field(2, 2, b"\x01" * 16) + field(3, 2, b"\xc1" * 48) + \
    field(4, 2, hashlib.sha256(b"x").digest())
write("configd-cipher", "config", b"\x00" + proto_seed("config-response"))
write("configd-cipher", "block", b"\x01" + cipher_block)
write("configd-cipher", "block-bad-iv", b"\x01" + field(1, 2, b"ctx-1") + field(2, 2, b"\x01" * 8) +
      field(3, 2, b"\xc1" * 48))
write("configd-cipher", "plaintext", b"\x02" + proto_seed("encryption-block"))
write("configd-store", "file", b"\x00" + store_file(proto_seed("config-response")))
write("configd-store", "file-truncated", b"\x00" + store_file(proto_seed("config-response"))[:-7])
write("configd-store", "payload", b"\x01" + proto_seed("config-response"))
write("controller-response", "envelope", b"\x00" + proto_seed("auth-signed"))
write("controller-response", "nonce", b"\x01" + field(1, 0, 2) + field(3, 2, field(1, 2, b"\x6e" * 32)))
for name in ("attest-resp-quote", "config-response", "controller-certs", "uuid-response"):
    write("controller-response", name, b"\x01" + proto_seed(name))
# evc-http: endpoint byte (register, uuid, attest, config, info, certs), then 1 = sealed by the device.
endpoints = {"register": 0, "uuid": 1, "attest": 2, "config": 3, "info": 4, "certs": 5}
write("evc-http", "raw-envelope", bytes([2, 0]) + proto_seed("auth-signed"))
write("evc-http", "certs", bytes([5, 0]))
for name, ep in (("register", "register"), ("uuid-response", "uuid"), ("attest-req-certs", "attest"),
                 ("attest-req-nonce", "attest"), ("attest-req-quote", "attest"),
                 ("attest-req-store-keys", "attest"), ("config-request", "config"), ("info-device", "info")):
    write("evc-http", name, bytes([endpoints[ep], 1]) + proto_seed(name))
# evc-admin: parser byte (pcrs, size, uuid, device name, certificate, vault entry, PCR value, config item), then
# the argument.
device_cert = """-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUBVzk1/KNNqKOcvS2gODw1uiLhzswCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLZnV6ei1kZXZpY2UwIBcNMjYxMTIyMjIyMTIwWhgPMjEyNjEw
MjkyMjIxMjBaMBYxFDASBgNVBAMMC2Z1enotZGV2aWNlMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEjsQnuJq4zgkIJLpyF2EgLW6GyL2jhuyjpYS7MJko5LVCn9c2
En1HTAdl1au/lwtnoFepFDWa8rusnx9mi+5G1qNTMFEwHQYDVR0OBBYEFB+mtUgw
UsZl+0UqYQCDG3IYIuvIMB8GA1UdIwQYMBaAFB+mtUgwUsZl+0UqYQCDG3IYIuvI
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgOp1tjRH8JOsg0bc0
YnOdMl4T3TlURNCO6RHDTNZOQRUCIDjehUEm6wItDCMEs0yuQkk4XKh64ekryqQy
SqIMxzeK
-----END CERTIFICATE-----
"""
write("evc-admin", "pcrs", b"\x00" + b"0,1,2,4,7")
write("evc-admin", "size", b"\x01" + b"512M")
write("evc-admin", "uuid", b"\x02" + b"5F3E6C1A-2B4D-4E8F-9A0B-1C2D3E4F5A6B")
write("evc-admin", "device", b"\x03" + b"fuzz-serial")
write("evc-admin", "cert", b"\x04" + device_cert.encode())
write("evc-admin", "vault", b"\x05" + b"image\x00" + struct.pack("<QBIB", 1 << 30, 1, 0x4091, 3) + b"\0\0")
write("evc-admin", "pcr-value", b"\x06" + b"8=" + b"ab" * 32)
write("evc-admin", "config-item", b"\x07" + b"timer.config.interval=30")
