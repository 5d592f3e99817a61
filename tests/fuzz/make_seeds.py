#!/usr/bin/python3
"""make_seeds.py - (re)write the libFuzzer seed corpus for fuzz_proto from the wire layout
in docs/PROTOCOL.md. Run it after any change to that layout:
    python3 tests/fuzz/make_seeds.py
Each seed is one whole frame (8-byte header + payload), as fuzz_proto expects."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "proto")


def pstr(b):
    return struct.pack(">H", len(b)) + b


def frame(t, payload):
    return struct.pack(">IHH", len(payload), t, 0) + payload


def op(seq, typ, path=b"", path2=b"", name=b"", data=b"", flags=0, valid=0, file_id=7,
       mode=0o100644, off=0, size=0, dir_=0):
    t = struct.pack(">qI", 1700000000, 123)
    return frame(3, struct.pack(">QBB", seq, typ, dir_) + struct.pack(">II", flags, valid)
                 + struct.pack(">Q", file_id) + struct.pack(">III", mode, 1000, 1000)
                 + struct.pack(">QQQ", 0, off, size) + t + t + t + t
                 + pstr(path) + pstr(path2) + pstr(name) + struct.pack(">I", len(data)) + data)


SEEDS = {
    "hello": frame(1, struct.pack(">HB", 1, 1) + pstr(b"n1") + pstr(b"db") + bytes(range(16))
                   + bytes(16) + struct.pack(">Q", 42)),
    "refuse": frame(2, struct.pack(">H", 3) + pstr(b"config hash differs")),
    "ack": frame(4, struct.pack(">QQ", 42, 41)),
    "ping": frame(5, struct.pack(">Q", 7)),
    "pong": frame(6, struct.pack(">Q", 7)),
    "op-create": op(1, 2, b"dir/file.txt", flags=0o101, valid=0x70),
    "op-write": op(2, 11, data=b"hello world" * 20, off=4096, valid=0x20),
    "op-rename": op(3, 9, b"a/b", b"c/d", flags=2, valid=0xc0),
    "op-setattr": op(4, 10, b"a/b", valid=0x3f, size=4096),
    "op-setxattr": op(5, 13, b"x", name=b"user.k", data=b"v", flags=1),
    "op-symlink": op(6, 5, b"ln", b"../target", mode=0o120777, valid=0x70),
    "op-fallocate": op(7, 12, flags=3, off=0, size=4096, valid=0x20),
    "rs-link": op(8, 41, b"a/second", b"a/first"),
    "rs-meta-xattrs": op(9, 34, b"f", flags=1, valid=0x37,
                         data=b"user.k\0" + struct.pack(">I", 1) + b"v"),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))
