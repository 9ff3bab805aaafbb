#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""EVE cipher blocks made independently of eve-trust's code: Python's cryptography (Debian's
python3-cryptography) and textbook P-256 arithmetic, nothing from this repository.

Given the device's ECDH certificate (its key lives in the TPM), this plays the controller
(facts/eve-api.md §2.6): a root CA and an ECDH certificate issued by it, K = SHA-256(X || Y) of the
shared point (controller key x device public key, coordinates left-padded to 32 bytes),
AES-256-CFB128 with a random 16-byte IV, clearTextSha256, and a protobuf EncryptionBlock encoded by
hand. It also makes the malformed blocks each distinct error needs.

Writes into OUT: root-certificate.pem, ecdh.pem (the controller ECDH certificate), rogue-ecdh.pem
(same kind of certificate from another root), and vector.json:
  {"controllerCertHash": hex, "deviceCertHash": hex, "rogueCertHash": hex,
   "contexts": [{"contextId", "deviceCertHash", "controllerCertHash" (hex)}],  the good one and one wrong
               in each way: unknown controller certificate, another device, the rogue certificate
   "cases": [{"name", "contextId", "iv", "data", "sha" (hex), "kind", "expect": "ok" | failure,
              "fields": {EncryptionBlock field name: value}}]}

usage: cipher-vector.py DEVICE_ECDH_CERT_PEM OUT_DIR
"""
import datetime
import hashlib
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 keeps CFB among the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:
    CFB = modes.CFB
from cryptography.x509.oid import NameOID

# NIST P-256 (FIPS 186-4 D.1.2.3)
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def point_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def point_mul(k, pt):
    acc = None
    while k:
        if k & 1:
            acc = point_add(acc, pt)
        pt = point_add(pt, pt)
        k >>= 1
    return acc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


# EncryptionBlock (evecommon/acipherinfo.proto): field numbers of the string fields we use.
FIELDS = {"dsAPIKey": 1, "dsPassword": 2, "wifiUserName": 3, "wifiPassword": 4, "protectedUserData": 5,
          "cluster_token": 8}


def encryption_block(fields):
    out = b""
    for name, value in fields.items():
        v = value.encode()
        out += varint(FIELDS[name] << 3 | 2) + varint(len(v)) + v
    return out


def make_ca(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_ecdh(ca_key, ca_cert, name):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, True, False, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def main():
    device_pem_path, out = sys.argv[1], sys.argv[2]
    device_pem = open(device_pem_path, "rb").read()
    device_pub = x509.load_pem_x509_certificate(device_pem).public_key()
    dn = device_pub.public_numbers()

    root_key, root = make_ca("Python test controller root")
    ctrl_key, ctrl = make_ecdh(root_key, root, "Python test controller ECDH")
    rogue_root_key, rogue_root = make_ca("Some other root")
    _, rogue = make_ecdh(rogue_root_key, rogue_root, "Rogue ECDH")

    # The shared point: textbook scalar multiplication, checked against cryptography's ECDH (X only).
    d = ctrl_key.private_numbers().private_value
    x, y = point_mul(d, (dn.x, dn.y))
    assert (y * y - (x * x * x + A * x + B)) % P == 0, "shared point not on the curve"
    assert ctrl_key.exchange(ec.ECDH(), device_pub) == x.to_bytes(32, "big"), "X differs from cryptography's ECDH"
    key = hashlib.sha256(x.to_bytes(32, "big") + y.to_bytes(32, "big")).digest()

    def seal(plain, iv=None):
        iv = iv if iv is not None else os.urandom(16)
        enc = Cipher(algorithms.AES(key), CFB(iv)).encryptor()  # CFB = full-block CFB128
        return iv, enc.update(plain) + enc.finalize(), hashlib.sha256(plain).digest()

    ctx = "python-ctx"
    cases = []

    def case(name, kind, plain, expect, fields=None, iv=None, sha=None, context=ctx, data=None):
        i, c, s = seal(plain, iv if iv is not None and len(iv) == 16 else None)
        if iv is not None:
            i = iv
        cases.append({"name": name, "kind": kind, "contextId": context, "iv": i.hex(),
                      "data": (data if data is not None else c).hex(), "sha": (sha or s).hex(),
                      "expect": expect, "fields": fields or {}})

    wifi = {"wifiUserName": "eve-user", "wifiPassword": "correct horse battery staple"}
    case("wifi", "wifi", encryption_block(wifi), "ok", wifi)
    ds = {"dsAPIKey": "AKIAEXAMPLEKEY", "dsPassword": "s3cr3t/with+odd=chars"}
    case("datastore", "datastore", encryption_block(ds), "ok", ds)
    ci = {"protectedUserData": "#cloud-config\n" + "runcmd: [echo hello]\n" * 60}  # many AES blocks, not 16n
    case("cloudinit", "cloudinit", encryption_block(ci), "ok", ci)
    case("bad-iv", "wifi", encryption_block(wifi), "bad-iv", iv=os.urandom(12))
    case("hash-mismatch", "wifi", encryption_block(wifi), "hash-mismatch",
         sha=hashlib.sha256(b"something else").digest())
    case("malformed", "wifi", b"\xff\xff\xff\xff not protobuf", "malformed-encryption-block")
    case("empty", "wifi", encryption_block({"cluster_token": "nothing for wifi"}), "empty-secret")
    case("unknown-context", "wifi", encryption_block(wifi), "unknown-context", context="no-such-context")
    case("no-data", "wifi", b"x", "no-data", data=b"")
    case("unknown-cert", "wifi", encryption_block(wifi), "unknown-certificate", context="ctx-unknown-cert")
    case("device-cert", "wifi", encryption_block(wifi), "device-cert-mismatch", context="ctx-other-device")
    case("rogue-cert", "wifi", encryption_block(wifi), "bad-certificate", context="ctx-rogue")

    ctrl_hash = hashlib.sha256(pem(ctrl)).digest()[:16]
    rogue_hash = hashlib.sha256(pem(rogue)).digest()[:16]
    dev_hash = hashlib.sha256(device_pem).digest()[:16]
    contexts = [
        {"contextId": ctx, "deviceCertHash": dev_hash.hex(), "controllerCertHash": ctrl_hash.hex()},
        {"contextId": "ctx-unknown-cert", "deviceCertHash": dev_hash.hex(), "controllerCertHash": "5a" * 16},
        {"contextId": "ctx-other-device", "deviceCertHash": "a5" * 16, "controllerCertHash": ctrl_hash.hex()},
        {"contextId": "ctx-rogue", "deviceCertHash": dev_hash.hex(), "controllerCertHash": rogue_hash.hex()},
    ]

    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "root-certificate.pem"), "wb").write(pem(root))
    open(os.path.join(out, "ecdh.pem"), "wb").write(pem(ctrl))
    open(os.path.join(out, "rogue-ecdh.pem"), "wb").write(pem(rogue))
    json.dump({
        "controllerCertHash": ctrl_hash.hex(),
        "rogueCertHash": rogue_hash.hex(),
        "deviceCertHash": dev_hash.hex(),
        "contexts": contexts,
        "cases": cases,
    }, open(os.path.join(out, "vector.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
