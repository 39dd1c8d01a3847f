#!/usr/bin/env python3
"""Reference of mindrec's word hash (src/detail/hash.hpp): the store file checksum since format
3 and the weights' item fingerprint. Written from the description in hash.hpp, independently of
the C++; prints the golden digests tests/unit/test_vector_store.cpp checks.

    python3 tools/reference/store_hash.py
"""
import struct

M = (1 << 64) - 1
BASIS = 0xCBF29CE484222325
PRIME = 0x100000001B3
FNV_PRIME = 1099511628211


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def word_hash(data: bytes) -> int:
    h = [BASIS ^ lane for lane in range(4)]
    full = len(data) // 32 * 32
    for at in range(0, full, 32):
        for lane in range(4):
            (w,) = struct.unpack_from("<Q", data, at + 8 * lane)
            h[lane] = ((h[lane] ^ w) * PRIME) & M
            h[lane] ^= h[lane] >> 29
    h0 = h[0]
    for b in data[full:]:
        h0 = ((h0 ^ b) * FNV_PRIME) & M
    return h0 ^ rotl(h[1], 16) ^ rotl(h[2], 32) ^ rotl(h[3], 48) ^ len(data)


if __name__ == "__main__":
    data = bytes((i * 7 + 3) % 256 for i in range(1000))
    print(f"1000 bytes (i*7+3): 0x{word_hash(data):016x}")
    print(f"empty: 0x{word_hash(b''):016x}")
    print(f"31 bytes: 0x{word_hash(data[:31]):016x}")
