"""Hand-written protobuf wire format: just enough to encode OTLP requests and read OTLP responses."""

import struct

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


def varint(n):
    """Base-128 varint; negative numbers as their 64-bit two's complement (int64 rules)."""
    n &= (1 << 64) - 1 if n < 0 else (1 << 70) - 1  # the caller may ask for over-long values on purpose
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field, wire):
    return varint((field << 3) | wire)


def f_varint(field, n):
    return tag(field, VARINT) + varint(n)


def f_fixed64(field, n):
    return tag(field, FIXED64) + struct.pack("<Q", n & ((1 << 64) - 1))


def f_fixed32(field, n):
    return tag(field, FIXED32) + struct.pack("<I", n & 0xFFFFFFFF)


def f_double(field, x):
    return tag(field, FIXED64) + struct.pack("<d", x)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return tag(field, LEN) + varint(len(data)) + data


def nested_prefixes(levels, inner, prefix_of):
    """`levels` messages each holding only the next one, around `inner`, in O(total size):
    `prefix_of(child_length)` returns the bytes that precede a child of that length."""
    prefixes = []
    length = len(inner)
    for _ in range(levels):
        p = prefix_of(length)
        prefixes.append(p)
        length += len(p)
    prefixes.reverse()
    return b"".join(prefixes) + inner


def read_fields(data):
    """(field, wire, value) triples of one message; value is an int or bytes. Raises ValueError."""
    i, out = 0, []
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            v, i = _read_varint(data, i)
        elif wire == FIXED64:
            v, i = struct.unpack_from("<Q", data, i)[0], i + 8
        elif wire == FIXED32:
            v, i = struct.unpack_from("<I", data, i)[0], i + 4
        elif wire == LEN:
            n, i = _read_varint(data, i)
            if i + n > len(data):
                raise ValueError("length past the end")
            v, i = data[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wire)
        out.append((field, wire, v))
    return out


def _read_varint(data, i):
    shift = n = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i
