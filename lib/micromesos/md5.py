# MD5 (RFC 1321) in pure Python, for ports whose hashlib has no md5 (authn.py imports it only then).
# MIT licence. One-shot only: digest(data) -> 16 bytes; the HMAC of one CRAM-MD5 step hashes ~4 blocks.
import struct

# Per-round left rotations, and the sine constants K[i] = floor(abs(sin(i + 1)) * 2**32) as a literal:
# a 32-bit port has single-precision floats, and 64 long ints would be 64 heap objects at import.
_S = b"\x07\x0c\x11\x16" * 4 + b"\x05\x09\x0e\x14" * 4 + b"\x04\x0b\x10\x17" * 4 + b"\x06\x0a\x0f\x15" * 4
_K = (
    b"\x78\xa4\x6a\xd7\x56\xb7\xc7\xe8\xdb\x70\x20\x24\xee\xce\xbd\xc1\xaf\x0f\x7c\xf5\x2a\xc6\x87\x47"
    b"\x13\x46\x30\xa8\x01\x95\x46\xfd\xd8\x98\x80\x69\xaf\xf7\x44\x8b\xb1\x5b\xff\xff\xbe\xd7\x5c\x89"
    b"\x22\x11\x90\x6b\x93\x71\x98\xfd\x8e\x43\x79\xa6\x21\x08\xb4\x49\x62\x25\x1e\xf6\x40\xb3\x40\xc0"
    b"\x51\x5a\x5e\x26\xaa\xc7\xb6\xe9\x5d\x10\x2f\xd6\x53\x14\x44\x02\x81\xe6\xa1\xd8\xc8\xfb\xd3\xe7"
    b"\xe6\xcd\xe1\x21\xd6\x07\x37\xc3\x87\x0d\xd5\xf4\xed\x14\x5a\x45\x05\xe9\xe3\xa9\xf8\xa3\xef\xfc"
    b"\xd9\x02\x6f\x67\x8a\x4c\x2a\x8d\x42\x39\xfa\xff\x81\xf6\x71\x87\x22\x61\x9d\x6d\x0c\x38\xe5\xfd"
    b"\x44\xea\xbe\xa4\xa9\xcf\xde\x4b\x60\x4b\xbb\xf6\x70\xbc\xbf\xbe\xc6\x7e\x9b\x28\xfa\x27\xa1\xea"
    b"\x85\x30\xef\xd4\x05\x1d\x88\x04\x39\xd0\xd4\xd9\xe5\x99\xdb\xe6\xf8\x7c\xa2\x1f\x65\x56\xac\xc4"
    b"\x44\x22\x29\xf4\x97\xff\x2a\x43\xa7\x23\x94\xab\x39\xa0\x93\xfc\xc3\x59\x5b\x65\x92\xcc\x0c\x8f"
    b"\x7d\xf4\xef\xff\xd1\x5d\x84\x85\x4f\x7e\xa8\x6f\xe0\xe6\x2c\xfe\x14\x43\x01\xa3\xa1\x11\x08\x4e"
    b"\x82\x7e\x53\xf7\x35\xf2\x3a\xbd\xbb\xd2\xd7\x2a\x91\xd3\x86\xeb"
)


def digest(data):
    """The MD5 digest of the bytes-like data, as 16 bytes."""
    # Every 32-bit word is kept as two 16-bit halves (hi, lo): a 32-bit port's small ints stop at 2**30,
    # and 32-bit arithmetic on long ints allocated ~115 KB per HMAC on the device model; halves allocate
    # nothing per round.
    n = len(data)
    msg = bytearray(data)
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg.extend(struct.pack("<II", (n << 3) & 0xFFFF | ((n >> 13) & 0xFFFF) << 16, n >> 29))
    h = [0x2301, 0x6745, 0xAB89, 0xEFCD, 0xDCFE, 0x98BA, 0x5476, 0x1032]  # A, B, C, D as (lo, hi)
    for off in range(0, len(msg), 64):
        al, ah, bl, bh, cl, ch, dl, dh = h
        for i in range(64):
            if i < 16:
                fl = (bl & cl) | (~bl & dl)
                fh = (bh & ch) | (~bh & dh)
                g = i
            elif i < 32:
                fl = (dl & bl) | (~dl & cl)
                fh = (dh & bh) | (~dh & ch)
                g = (5 * i + 1) & 15
            elif i < 48:
                fl = bl ^ cl ^ dl
                fh = bh ^ ch ^ dh
                g = (3 * i + 5) & 15
            else:
                fl = cl ^ (bl | (dl ^ 0xFFFF))
                fh = ch ^ (bh | (dh ^ 0xFFFF))
                g = (7 * i) & 15
            # K[i] and the block's word g, little-endian, read byte by byte: no tuple per block
            j = 4 * i
            g = off + 4 * g
            fl = (fl & 0xFFFF) + al + (_K[j] | _K[j + 1] << 8) + (msg[g] | msg[g + 1] << 8)
            fh = ((fh & 0xFFFF) + ah + (_K[j + 2] | _K[j + 3] << 8) + (msg[g + 2] | msg[g + 3] << 8)
                  + (fl >> 16)) & 0xFFFF
            fl &= 0xFFFF
            s = _S[i]
            if s >= 16:  # rotate by 16 = swap the halves
                fl, fh = fh, fl
                s -= 16
            m = 0xFFFF >> s
            rh = ((fh & m) << s) | (fl >> (16 - s))
            rl = ((fl & m) << s) | (fh >> (16 - s))
            al, ah = dl, dh
            dl, dh = cl, ch
            cl, ch = bl, bh
            bl = bl + rl
            bh = (bh + rh + (bl >> 16)) & 0xFFFF
            bl &= 0xFFFF
        t = h[0] + al
        h[0] = t & 0xFFFF
        h[1] = (h[1] + ah + (t >> 16)) & 0xFFFF
        t = h[2] + bl
        h[2] = t & 0xFFFF
        h[3] = (h[3] + bh + (t >> 16)) & 0xFFFF
        t = h[4] + cl
        h[4] = t & 0xFFFF
        h[5] = (h[5] + ch + (t >> 16)) & 0xFFFF
        t = h[6] + dl
        h[6] = t & 0xFFFF
        h[7] = (h[7] + dh + (t >> 16)) & 0xFFFF
    return struct.pack("<8H", *h)
