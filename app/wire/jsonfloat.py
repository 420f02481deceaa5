"""float32 arrays as JSON text: the shortest digits that read back to the same float32, written without the GIL.

A 1000-step LSTM trace is some 770,000 float32 values; written by orjson they cost more than the trace itself,
and orjson holds the GIL, so no other thread can help. Here Ryu's f2s (Ulf Adams, PLDI 2018: the shortest
decimal that rounds to the float, the closest one when several are as short) is compiled with numba and releases
the GIL, so arrays are written on a pool thread while the trace's BPTT runs, and then by two threads at once.
The text is byte for byte what orjson writes for the same array ("0.00001", "1e-7", "1e+16", NaN and ±inf as
null): tests/wire/test_jsonfloat.py holds the two against each other on edge cases and 2M random bit patterns, and
`python -m tests.wire.exhaustive_jsonfloat` on all 2³² (3 minutes). Each array is written once; REST sends it whole
and the stream sends it row by row.

Every integer below is int64: the largest product, a 26-bit mantissa times a 32-bit half of a 61-bit factor, is
under 2⁵⁸, and numba's int64 arithmetic avoids the float64 promotion that mixing uint64 with int would cause.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
import orjson
from numpy.typing import NDArray

from app.engine.jit import njit
from app.engine.kernels import CACHE_MODE
from app.web.config import usable_cores

_POW5_INV_BITCOUNT = 59
_POW5_BITCOUNT = 61


def _pow5_tables() -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Ryu's float tables: ⌊2^(bits(5^i)−1+59) / 5^i⌋ + 1 (i < 31), and 5^i's leading 61 bits (i < 47)."""
    inv = [(1 << ((5**i).bit_length() - 1 + _POW5_INV_BITCOUNT)) // 5**i + 1 for i in range(31)]
    split = [
        (5**i >> (n - _POW5_BITCOUNT)) if n >= _POW5_BITCOUNT else (5**i << (_POW5_BITCOUNT - n))
        for i, n in ((i, (5**i).bit_length()) for i in range(47))
    ]
    return np.array(inv, np.int64), np.array(split, np.int64)


_POW5_INV_SPLIT, _POW5_SPLIT = _pow5_tables()
_LOW32 = 0xFFFFFFFF


F = TypeVar("F", bound=Callable[..., Any])


def _jit(fn: F) -> F:
    return njit(CACHE_MODE, nogil=True, boundscheck=False, error_model="numpy")(fn)


def _inline(fn: F) -> F:
    # numba calls another compiled function through a pointer, which LLVM cannot inline: a few ns a call.
    return cast(F, numba.njit(inline="always")(fn))


@_inline
def _pow5bits(e: int) -> int:
    return ((e * 1217359) >> 19) + 1


@_inline
def _mul_shift(m: int, factor: int, shift: int) -> int:
    """⌊m · factor / 2^shift⌋ for a 26-bit m and a 61-bit factor, in two 64-bit products."""
    bits0 = m * (factor & _LOW32)
    bits1 = m * (factor >> 32)
    return (((bits0 >> 32) + bits1) >> (shift - 32)) & _LOW32


@_inline
def _multiple_of_pow5(value: int, p: int) -> bool:
    count = 0
    while value % 5 == 0:
        value //= 5
        count += 1
    return count >= p


@_inline
def _shortest(ieee_mantissa: int, ieee_exponent: int) -> tuple[int, int]:
    """(digits, exponent) with digits·10^exponent the shortest decimal that reads back as this float32."""
    if ieee_exponent == 0:
        e2 = 1 - 127 - 23 - 2
        m2 = ieee_mantissa
    else:
        e2 = ieee_exponent - 127 - 23 - 2
        m2 = (1 << 23) | ieee_mantissa
    accept_bounds = (m2 & 1) == 0  # round half to even: an even mantissa owns its interval's ends
    mv = 4 * m2
    mp = 4 * m2 + 2
    mm_shift = 1 if (ieee_mantissa != 0 or ieee_exponent <= 1) else 0
    mm = 4 * m2 - 1 - mm_shift
    vm_trailing_zeros = False
    vr_trailing_zeros = False
    last_removed = 0
    if e2 >= 0:
        q = (e2 * 78913) >> 18  # ⌊log10 2^e2⌋
        e10 = q
        k = _POW5_INV_BITCOUNT + _pow5bits(q) - 1
        i = -e2 + q + k
        vr = _mul_shift(mv, _POW5_INV_SPLIT[q], i)
        vp = _mul_shift(mp, _POW5_INV_SPLIT[q], i)
        vm = _mul_shift(mm, _POW5_INV_SPLIT[q], i)
        if q != 0 and (vp - 1) // 10 <= vm // 10:
            j = _POW5_INV_BITCOUNT + _pow5bits(q - 1) - 1
            last_removed = _mul_shift(mv, _POW5_INV_SPLIT[q - 1], -e2 + q - 1 + j) % 10
        if q <= 9:
            if mv % 5 == 0:
                vr_trailing_zeros = _multiple_of_pow5(mv, q)
            elif accept_bounds:
                vm_trailing_zeros = _multiple_of_pow5(mm, q)
            elif _multiple_of_pow5(mp, q):
                vp -= 1
    else:
        q = (-e2 * 732923) >> 20  # ⌊log10 5^−e2⌋
        e10 = q + e2
        i = -e2 - q
        k = _pow5bits(i) - _POW5_BITCOUNT
        j = q - k
        vr = _mul_shift(mv, _POW5_SPLIT[i], j)
        vp = _mul_shift(mp, _POW5_SPLIT[i], j)
        vm = _mul_shift(mm, _POW5_SPLIT[i], j)
        if q != 0 and (vp - 1) // 10 <= vm // 10:
            j = q - 1 - (_pow5bits(i + 1) - _POW5_BITCOUNT)
            last_removed = _mul_shift(mv, _POW5_SPLIT[i + 1], j) % 10
        if q <= 1:
            vr_trailing_zeros = True
            if accept_bounds:
                vm_trailing_zeros = mm_shift == 1
            else:
                vp -= 1
        elif q < 31:
            vr_trailing_zeros = (mv & ((1 << (q - 1)) - 1)) == 0

    removed = 0
    if vm_trailing_zeros or vr_trailing_zeros:  # the rare general case (about 4 %)
        while vp // 10 > vm // 10:
            vm_trailing_zeros = vm_trailing_zeros and vm % 10 == 0
            vr_trailing_zeros = vr_trailing_zeros and last_removed == 0
            last_removed = vr % 10
            vr //= 10
            vp //= 10
            vm //= 10
            removed += 1
        if vm_trailing_zeros:
            while vm % 10 == 0:
                vr_trailing_zeros = vr_trailing_zeros and last_removed == 0
                last_removed = vr % 10
                vr //= 10
                vp //= 10
                vm //= 10
                removed += 1
        if vr_trailing_zeros and last_removed == 5 and vr % 2 == 0:
            last_removed = 4  # an exact tie rounds to even
        up = (vr == vm and (not accept_bounds or not vm_trailing_zeros)) or last_removed >= 5
    else:
        while vp // 10 > vm // 10:
            last_removed = vr % 10
            vr //= 10
            vp //= 10
            vm //= 10
            removed += 1
        up = vr == vm or last_removed >= 5
    return vr + (1 if up else 0), e10 + removed


_POW10 = np.array([10**n for n in range(10)], np.int64)
_TWO_DIGITS = np.frombuffer("".join(f"{n:02d}" for n in range(100)).encode(), np.uint8).copy()
_NULL = np.frombuffer(b"null", np.uint8).copy()


@_inline
def _decimal_length(v: int) -> int:
    """Digits in v < 10⁹, in at most four comparisons (a loop costs a mispredicted branch per value)."""
    if v >= 10000:
        if v >= 1000000:
            if v >= 100000000:
                return 9
            return 8 if v >= 10000000 else 7
        return 6 if v >= 100000 else 5
    if v >= 100:
        return 4 if v >= 1000 else 3
    return 2 if v >= 10 else 1


@_inline
def _put_digits(digits: int, length: int, out: Any, pos: int) -> None:
    """digits as exactly `length` decimal digits at out[pos:], two at a time."""
    n = pos + length
    while n - pos >= 2:
        d = digits % 100
        digits //= 100
        out[n - 1] = _TWO_DIGITS[2 * d + 1]
        out[n - 2] = _TWO_DIGITS[2 * d]
        n -= 2
    if n > pos:
        out[pos] = 48 + digits % 10


@_inline
def _put_float(bits: int, out: Any, pos: int) -> int:
    """Write one float32 (given as its bits) at out[pos:] the way orjson does; return the position after it."""
    exponent = (bits >> 23) & 0xFF
    mantissa = bits & 0x7FFFFF
    if exponent == 0xFF:  # NaN and ±inf: JSON has no such numbers
        out[pos : pos + 4] = _NULL
        return pos + 4
    if bits >> 31:
        out[pos] = 45  # -
        pos += 1
    if exponent == 0 and mantissa == 0:
        out[pos] = 48
        out[pos + 1] = 46
        out[pos + 2] = 48
        return pos + 3
    digits, k = _shortest(mantissa, exponent)
    length = _decimal_length(digits)
    kk = length + k  # 10^(kk−1) ≤ value < 10^kk
    if 0 <= k and kk <= 13:  # 1234e7 → 12340000000.0
        _put_digits(digits, length, out, pos)
        for n in range(length, kk):
            out[pos + n] = 48
        out[pos + kk] = 46
        out[pos + kk + 1] = 48
        return pos + kk + 2
    if 0 < kk <= 13:  # 1234e-2 → 12.34
        scale = int(_POW10[length - kk])
        _put_digits(digits // scale, kk, out, pos)
        out[pos + kk] = 46
        _put_digits(digits % scale, length - kk, out, pos + kk + 1)
        return pos + length + 1
    if -6 < kk <= 0:  # 1234e-6 → 0.001234
        out[pos] = 48
        out[pos + 1] = 46
        for n in range(2, 2 - kk):
            out[pos + n] = 48
        _put_digits(digits, length, out, pos + 2 - kk)
        return pos + 2 - kk + length
    # 1234e30 → 1.234e+33
    scale = int(_POW10[length - 1])
    out[pos] = 48 + digits // scale
    pos += 1
    if length > 1:
        out[pos] = 46
        _put_digits(digits % scale, length - 1, out, pos + 1)
        pos += length
    out[pos] = 101  # e
    e = kk - 1
    out[pos + 1] = 45 if e < 0 else 43
    e = abs(e)
    n = 2 if e >= 10 else 1
    _put_digits(e, n, out, pos + 2)
    return pos + 2 + n


@_jit
def _put_rows(bits: Any, out: Any, starts: Any, ends: Any) -> int:
    """Write the rows of a 2-D float32 array (as uint32 bits) as JSON arrays joined by commas; row t's text is
    out[starts[t]:ends[t]]. Return the length written."""
    pos = 0
    for t in range(bits.shape[0]):
        if t:
            out[pos] = 44  # ,
            pos += 1
        starts[t] = pos
        out[pos] = 91  # [
        pos += 1
        for j in range(bits.shape[1]):
            if j:
                out[pos] = 44
                pos += 1
            pos = _put_float(bits[t, j], out, pos)
        out[pos] = 93  # ]
        pos += 1
        ends[t] = pos
    return pos


_TOKEN = np.frombuffer(b'{"token":', np.uint8).copy()
_P = np.frombuffer(b',"p":', np.uint8).copy()


@_jit
def _put_predictions(ids: Any, bits: Any, names: Any, name_ends: Any, out: Any, starts: Any, ends: Any) -> int:
    """Each step's top-k as [{"token":…,"p":…},…], rows joined by commas; names holds each token's JSON string,
    token i at names[name_ends[i−1]:name_ends[i]]."""
    pos = 0
    for t in range(ids.shape[0]):
        if t:
            out[pos] = 44
            pos += 1
        starts[t] = pos
        out[pos] = 91
        pos += 1
        for j in range(ids.shape[1]):
            if j:
                out[pos] = 44
                pos += 1
            out[pos : pos + 9] = _TOKEN
            pos += 9
            i = ids[t, j]
            a = name_ends[i - 1] if i else 0
            n = name_ends[i] - a
            out[pos : pos + n] = names[a : a + n]
            pos += n
            out[pos : pos + 5] = _P
            pos = _put_float(bits[t, j], out, pos + 5)
            out[pos] = 125  # }
            pos += 1
        out[pos] = 93
        pos += 1
        ends[t] = pos
    return pos


_TENS = np.array([10.0**k if k <= 308 else math.inf for k in range(-400, 401)])  # 10^k at [k + 400]


@_inline
def _pow10(k: int) -> float:
    return 0.0 if k < -400 else (math.inf if k > 400 else float(_TENS[k + 400]))


@_jit
def _round_into(x: Any, out: Any, digits: int) -> None:
    """x rounded to `digits` significant digits, into out (1-D, x's dtype): each value, in float64, scaled by the
    power of ten that leaves `digits` digits before the point, rounded half to even, scaled back. The decimal
    exponent comes from the binary one and a table (log10 and pow per value would cost 4× as much). Zeros,
    infinities and NaN stay as they are; so does a value whose scale overflows (below ~1e-300)."""
    for i in range(x.size):
        v = np.float64(x[i])
        a = abs(v)
        if a == 0.0 or not np.isfinite(v):
            out[i] = x[i]
            continue
        e = math.floor((math.frexp(a)[1] - 1) * 0.30102999566398120)  # ≤ log10(a), at most 1 below
        while _pow10(e + 1) <= a:
            e += 1
        k = digits - 1 - e  # v · 10^k has `digits` digits before the point
        if k >= 0:
            scale = _pow10(k)
            r = np.rint(v * scale) / scale
        else:  # divide and multiply by 10^−k, exact up to 10^22: 886135 to 1 digit is 900000.0, not 899999.9999999999
            scale = _pow10(-k)
            r = np.rint(v / scale) * scale
        out[i] = r if np.isfinite(r) else v


def round_significant(a: NDArray[Any], digits: int | None) -> NDArray[Any]:
    """a rounded to `digits` significant digits (None: a itself), as a new contiguous array of a's dtype. Tiny
    values keep their magnitude: 1.234e-25. Compiled and without the GIL: the pool rounds while it writes."""
    if digits is None:
        return a
    src = np.ascontiguousarray(a)
    out = np.empty_like(src)
    _round_into(src.reshape(-1), out.reshape(-1), digits)
    if src.dtype == np.float64:
        # Beyond 10^±22 a power of ten is inexact in float64, and the result can miss the double nearest the
        # rounded decimal by an ulp: 2.9999999999999998e-210, not 3e-210, which defeats the short text. These are
        # gradient norms and losses, a few per step: Python's correctly rounded conversion fixes them.
        v = np.abs(src)
        far = np.flatnonzero(np.isfinite(v) & (v != 0) & ((v < 10.0 ** (digits - 23)) | (v >= 1e22)))
        flat_in, flat_out = src.reshape(-1), out.reshape(-1)
        flat_out[far] = [float(f"{x:.{digits - 1}e}") for x in flat_in[far].tolist()]
    return out


_MAX_CHARS = 18  # "-0.00000123456789," is the longest float32 plus its comma
_CHUNK = 16384  # values a chunk: small enough that threads finish together, large enough to cost ~0.5 ms
_HELPERS = max(1, usable_cores() - 1)  # with the thread that asks for the result, one writer per core
_pool = ThreadPoolExecutor(max_workers=_HELPERS, thread_name_prefix="jsonfloat")


@dataclass(frozen=True)
class Rows:
    """A 2-D float32 array as JSON text "[[…],[…]]", whose row t is text[starts[t]:ends[t]]."""

    text: bytes
    starts: list[int]  # Python ints: a frame slices one row at a time, and numpy scalars index slowly
    ends: list[int]

    def whole(self) -> orjson.Fragment:
        return orjson.Fragment(self.text)

    def raw(self, t: int) -> bytes:
        """Row t's text, "[…]"."""
        return self.text[self.starts[t] : self.ends[t]]


Chunk = tuple[bytes, NDArray[np.int64], NDArray[np.int64]]  # text, row starts, row ends


def _write(bits: NDArray[np.uint32]) -> Chunk:
    out = np.empty(bits.size * _MAX_CHARS + 3 * len(bits), np.uint8)
    starts, ends = np.empty(len(bits), np.int64), np.empty(len(bits), np.int64)
    n = _put_rows(bits, out, starts, ends)
    # A copy the size of the text, so that `out` is freed at once and the next chunk reuses its pages: keeping
    # every chunk's buffer alive until the join had each request touch ~15 MB of fresh pages (3 ms slower).
    return out[:n].tobytes(), starts, ends


class Writing:
    """2-D float32 arrays, each under a name, being written as JSON, in chunks of rows that the pool's threads take
    as they come;
    whoever asks for the result takes the chunks still waiting, so a busy pool never makes it wait idle. The
    thread that writes an array's last chunk joins the array's text.

    Arrays may be added while it runs: the server adds each of the forward's states and gates as soon as torch
    has computed it, and they are written while the rest of the trace (BPTT) runs, since it only reads them."""

    def __init__(self, arrays: Iterable[tuple[Hashable, NDArray[Any]]] = (), digits: int | None = None) -> None:
        self.digits = digits  # each value rounded to this many significant digits first (round_significant)
        self._names: list[Hashable] = []  # per array, the name its text is asked for by
        self._waiting: collections.deque[tuple[int, int, NDArray[np.float32]]] = collections.deque()
        self._pieces: list[list[Chunk | None]] = []  # per array, its chunks' text once written
        self._finished: list[itertools.count[int]] = []  # per array: next() on it counts its chunks written
        self._rows: list[Rows | None] = []
        self._helpers: list[Future[None]] = []
        self.add(arrays)

    def add(self, arrays: Iterable[tuple[Hashable, NDArray[Any]]]) -> None:
        """Begin writing these (name, array) pairs; each name once."""
        values_added = 0
        for name, a in arrays:
            n = len(self._rows)
            self._names.append(name)
            values = np.ascontiguousarray(a, np.float32)
            values_added += values.size
            step = max(1, _CHUNK // max(1, values.shape[1]))
            starts = range(0, len(values), step)
            self._pieces.append([None] * len(starts))
            self._finished.append(itertools.count(1))
            self._rows.append(None if starts else _join([]))
            # deque.append and popleft are atomic: each chunk is taken by exactly one thread.
            self._waiting.extend((n, i, values[t0 : t0 + step]) for i, t0 in enumerate(starts))
        # A helper per call (a helper that finds nothing waiting returns at once): one that is about to return
        # may not see these chunks. Less than a chunk's work is left to the result's caller: waking a thread for
        # it would cost more than writing it.
        if values_added >= _CHUNK:
            self._helpers += [_pool.submit(self._work) for _ in range(_HELPERS)]

    def _work(self) -> None:
        while True:
            try:
                n, i, values = self._waiting.popleft()
            except IndexError:
                return
            pieces = self._pieces[n]
            pieces[i] = _write(round_significant(values, self.digits).view(np.uint32))
            if next(self._finished[n]) == len(pieces):  # this thread wrote the array's last chunk
                self._rows[n] = _join(pieces)  # type: ignore[arg-type]

    def result(self) -> dict[Hashable, Rows]:
        """Every array's text, by its name."""
        self._work()
        for helper in self._helpers:
            helper.result()
        assert all(r is not None for r in self._rows) and len(set(self._names)) == len(self._names)
        return dict(zip(self._names, self._rows, strict=True))  # type: ignore[arg-type]


def _join(pieces: list[Chunk]) -> Rows:
    """One array's chunks as one text, "[" + chunk + "," + chunk … + "]", with the rows' places shifted to match."""
    starts, ends, offset = [], [], 1
    parts = [b"["]
    for text, s, e in pieces:
        starts.append(s + offset)
        ends.append(e + offset)
        parts += [text, b","]
        offset += len(text) + 1
    if len(parts) > 1:
        parts.pop()  # the last comma
    parts.append(b"]")
    empty = np.empty(0, np.int64)
    return Rows(b"".join(parts), np.concatenate([empty, *starts]).tolist(), np.concatenate([empty, *ends]).tolist())


def write_rows(arrays: list[NDArray[Any]], digits: int | None = None) -> list[Rows]:
    """Arrays as JSON text, in the order given."""
    return list(Writing(enumerate(arrays), digits).result().values())


@functools.lru_cache(maxsize=64)
def _names(vocab: tuple[str, ...]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """A vocabulary's tokens as JSON strings, escaped by orjson, end to end."""
    encoded = [orjson.dumps(token) for token in vocab]
    return np.frombuffer(b"".join(encoded), np.uint8), np.cumsum([len(e) for e in encoded], dtype=np.int64)


def write_predictions(ids: NDArray[np.int64], probs: NDArray[np.float32], vocab: tuple[str, ...]) -> Rows:
    """Each step's top-k tokens and probabilities (T, k) as JSON, [[{"token": "e", "p": 0.31}, …], …]."""
    names, name_ends = _names(vocab)
    bits = np.ascontiguousarray(probs, np.float32).view(np.uint32)
    widest = int(np.diff(name_ends, prepend=0).max(initial=0))
    out = np.empty(bits.size * (_MAX_CHARS + 16 + widest) + 3 * len(bits) + 2, np.uint8)
    starts, ends = np.empty(len(bits), np.int64), np.empty(len(bits), np.int64)
    n = _put_predictions(np.ascontiguousarray(ids, np.int64), bits, names, name_ends, out[1:], starts, ends)
    out[0], out[n + 1] = ord("["), ord("]")
    return Rows(out[: n + 2].tobytes(), (starts + 1).tolist(), (ends + 1).tolist())


def warm_up() -> None:
    """Compile (or load from the cache) the writers and the rounding once, so that no request pays for it."""
    write_rows([np.zeros((2, 2), np.float32)], digits=3)
    round_significant(np.zeros(2), 3)  # float64: gradient norms and losses
    write_predictions(np.zeros((2, 1), np.int64), np.zeros((2, 1), np.float32), ("a",))
