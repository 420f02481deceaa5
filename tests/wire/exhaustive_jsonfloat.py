"""Every float32 bit pattern, all 2³² of them: app.wire.jsonfloat writes the same bytes as orjson.

Not part of `make test` (about 3 minutes on two cores, 6 on one); run it after touching the writer:

    .venv/bin/python -m tests.wire.exhaustive_jsonfloat [--processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

import numpy as np
import orjson

from app.wire.jsonfloat import _write

BLOCK = 1 << 22  # bit patterns per comparison: 4M values, ~100 MB of text at a time
ROW = 1024


def check(start: int) -> str | None:
    """The first mismatch in [start, start + BLOCK), or None."""
    bits = (np.arange(start, start + BLOCK, dtype=np.uint64).astype(np.uint32)).reshape(-1, ROW)
    text, _, _ = _write(bits)
    ours = b"[" + text + b"]"
    theirs = orjson.dumps(bits.view(np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    if ours == theirs:
        return None
    values = zip(ours.replace(b"]", b"").split(b","), theirs.replace(b"]", b"").split(b","), strict=False)
    for i, (a, b) in enumerate(values):
        if a != b:
            return f"0x{start + i:08x}: ours {a.lstrip(b'[')!r}, orjson {b.lstrip(b'[')!r}"
    return f"block at 0x{start:08x} differs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=multiprocessing.cpu_count())
    args = parser.parse_args()
    began = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        mismatches = [m for m in pool.imap_unordered(check, range(0, 1 << 32, BLOCK)) if m]
    print(f"{1 << 32} float32 bit patterns in {time.perf_counter() - began:.0f} s: {len(mismatches)} blocks differ")
    for m in mismatches[:20]:
        print(" ", m)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
