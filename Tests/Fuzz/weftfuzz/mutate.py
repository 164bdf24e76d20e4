"""Byte-level mutations and gzip variants of request bodies."""

import gzip
import struct
import zlib

from . import protobuf as pb


def bit_flips(rng, data):
    b = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def truncate(rng, data):
    return data[:rng.randrange(len(data) + 1)]


def splice(rng, data):
    if len(data) < 2:
        return data + data
    i, j = sorted(rng.randrange(len(data)) for _ in range(2))
    k = rng.randrange(len(data))
    return data[:k] + data[i:j] + data[k:]


def wrong_wire_type(rng, data):
    """Changes the wire type of a field key: the first byte, or one at a random offset."""
    b = bytearray(data)
    if not b:
        return bytes([0x0B])
    i = 0 if rng.random() < 0.5 else rng.randrange(len(b))
    b[i] = (b[i] & 0xF8) | rng.choice([3, 4, 6, 7, 1, 5])
    return bytes(b)


def huge_length(rng, data):
    """A length-delimited field whose length prefix promises far more bytes than follow."""
    n = rng.choice([1 << 31, (1 << 32) - 1, 1 << 62, (1 << 64) - 1, 64 << 20, len(data) + 1])
    field = rng.choice([1, 2, 5, 9])
    head = pb.tag(field, pb.LEN) + pb.varint(n)
    if rng.random() < 0.5:
        return head + data
    k = rng.randrange(len(data) + 1)
    return data[:k] + head + data[k:]


def over_long_varint(rng, data):
    return pb.tag(1, pb.LEN) + b"\xff" * rng.choice([10, 11, 20, 100]) + b"\x01" + data


def garbage(rng, data):
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 512)))


BYTE_MUTATIONS = [bit_flips, truncate, splice, wrong_wire_type, huge_length, over_long_varint, garbage]

_BOMB = {}


def bomb(size):
    """gzip of `size` zero bytes (cached: building it takes a moment)."""
    if size not in _BOMB:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = bytes(1 << 20)
        parts = [c.compress(chunk) for _ in range(size >> 20)]
        parts.append(c.flush())
        _BOMB[size] = b"".join(parts)
    return _BOMB[size]


def gzip_variant(rng, body):
    """(name, compressed bytes, Content-Encoding value)."""
    r = rng.random()
    z = gzip.compress(body, mtime=0)
    if r < 0.3:
        return "gzip", z, rng.choice(["gzip", "x-gzip", "GZIP", "Gzip"])
    if r < 0.4:
        return "gzip-bomb-100MiB", bomb(100 << 20), "gzip"
    if r < 0.45:
        return "gzip-bomb-1GiB", bomb(1 << 30), "gzip"
    if r < 0.55:
        return "gzip-truncated-trailer", z[:-rng.randrange(1, 9)], "gzip"
    if r < 0.65:
        bad = bytearray(z)
        bad[-8:-4] = struct.pack("<I", (zlib.crc32(body) ^ 0xDEADBEEF) & 0xFFFFFFFF)
        return "gzip-bad-crc", bytes(bad), "gzip"
    if r < 0.7:
        bad = bytearray(z)
        bad[-4:] = struct.pack("<I", (len(body) + 12345) & 0xFFFFFFFF)
        return "gzip-bad-isize", bytes(bad), "gzip"
    if r < 0.75:
        return "gzip-two-members", z + gzip.compress(body, mtime=0), "gzip"
    if r < 0.8:
        return "gzip-header-only", z[:10], "gzip"
    if r < 0.85:
        return "gzip-of-gzip", gzip.compress(z, mtime=0), "gzip"
    if r < 0.9:
        return "gzip-bit-flips", bit_flips(rng, z), "gzip"
    return "gzip-trailing-garbage", z + b"garbage", "gzip"


ENCODING_NAMES = ["deflate", "br", "zstd", "gzip, identity", "identity", "none", "", "compress", "gzip;q=1", "\xff"]
