"""A QR code of a join URL, drawn here (no outside service): byte mode, error correction level M, versions 1–6.

A trimmed port of Project Nayuki's QR Code generator (MIT licence, https://www.nayuki.io/page/qr-code-generator-
library), which follows ISO/IEC 18004: the data codewords, their Reed–Solomon codewords interleaved by block, the
zigzag placement, and the mask of the lowest penalty. Versions 1–6 hold up to 106 bytes at level M, enough for a
join URL; a room's page shows the code as an SVG, scaled to fill the projector's height.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

MAX_VERSION = 6
# Level M, versions 1–6 (index 0 unused): Reed–Solomon codewords per block, and blocks
ECC_PER_BLOCK = (-1, 10, 16, 26, 18, 24, 16)
BLOCKS = (-1, 1, 1, 1, 2, 2, 4)
FORMAT_BITS_M = 0  # level M's two bits in the format information
PENALTY_N1, PENALTY_N2, PENALTY_N3, PENALTY_N4 = 3, 3, 40, 10
MASKS: tuple[Callable[[int, int], int], ...] = (
    lambda x, y: (x + y) % 2,
    lambda x, y: y % 2,
    lambda x, y: x % 3,
    lambda x, y: (x + y) % 3,
    lambda x, y: (x // 3 + y // 2) % 2,
    lambda x, y: x * y % 2 + x * y % 3,
    lambda x, y: (x * y % 2 + x * y % 3) % 2,
    lambda x, y: ((x + y) % 2 + x * y % 3) % 2,
)


class TooLong(ValueError):
    """The text does not fit a version-6 code at level M."""


def raw_modules(version: int) -> int:
    """Modules left for data and error correction once the function patterns are drawn (versions 1–6)."""
    result = (16 * version + 128) * version + 64
    if version >= 2:
        result -= 25  # one alignment pattern, less its overlap with the timing patterns
    return result


def data_codewords(version: int) -> int:
    return raw_modules(version) // 8 - ECC_PER_BLOCK[version] * BLOCKS[version]


def _gf_multiply(x: int, y: int) -> int:
    """x · y in GF(2⁸) modulo x⁸ + x⁴ + x³ + x² + 1."""
    z = 0
    for i in reversed(range(8)):
        z = (z << 1) ^ ((z >> 7) * 0x11D)
        z ^= ((y >> i) & 1) * x
    return z


def _rs_divisor(degree: int) -> list[int]:
    result = [0] * (degree - 1) + [1]
    root = 1
    for _ in range(degree):
        for j in range(degree):
            result[j] = _gf_multiply(result[j], root)
            if j + 1 < degree:
                result[j] ^= result[j + 1]
        root = _gf_multiply(root, 0x02)
    return result


def rs_remainder(data: bytes | list[int], divisor: list[int]) -> list[int]:
    """The Reed–Solomon error correction codewords of a block."""
    result = [0] * len(divisor)
    for b in data:
        factor = b ^ result.pop(0)
        result.append(0)
        for i, coef in enumerate(divisor):
            result[i] ^= _gf_multiply(coef, factor)
    return result


class QrCode:
    """The modules of one QR code: `modules[y][x]` is True for a dark module."""

    def __init__(self, text: str) -> None:
        data = text.encode("utf-8")
        for version in range(1, MAX_VERSION + 1):
            if 4 + 8 + 8 * len(data) <= data_codewords(version) * 8:
                break
        else:
            raise TooLong(
                f"{len(data)} bytes; a version-{MAX_VERSION} QR code at level M holds {data_codewords(6) - 2}"
            )
        self.version = version
        self.size = version * 4 + 17
        self.modules = [[False] * self.size for _ in range(self.size)]
        self._function = [[False] * self.size for _ in range(self.size)]
        self._draw_function_patterns()
        self._draw_codewords(self._interleave(self._codewords(data)))
        best, lowest = 0, 1 << 32
        for mask in range(8):
            self._apply_mask(mask)
            self._draw_format_bits(mask)
            penalty = self.penalty()
            if penalty < lowest:
                best, lowest = mask, penalty
            self._apply_mask(mask)  # XOR again: undone
        self.mask = best
        self._apply_mask(best)
        self._draw_format_bits(best)

    def _codewords(self, data: bytes) -> list[int]:
        """Mode (byte), count, the bytes, terminator and padding: the version's data codewords."""
        bits: list[int] = []

        def put(value: int, n: int) -> None:
            bits.extend((value >> i) & 1 for i in reversed(range(n)))

        put(0x4, 4)
        put(len(data), 8)  # byte mode's count is 8 bits up to version 9
        for b in data:
            put(b, 8)
        capacity = data_codewords(self.version) * 8
        put(0, min(4, capacity - len(bits)))
        put(0, -len(bits) % 8)
        pad = 0xEC
        while len(bits) < capacity:
            put(pad, 8)
            pad ^= 0xEC ^ 0x11
        return [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]

    def _interleave(self, data: list[int]) -> list[int]:
        blocks_n, ecc_len = BLOCKS[self.version], ECC_PER_BLOCK[self.version]
        raw = raw_modules(self.version) // 8
        short_n = blocks_n - raw % blocks_n
        short_len = raw // blocks_n
        divisor = _rs_divisor(ecc_len)
        blocks: list[list[int]] = []
        k = 0
        for i in range(blocks_n):
            block = data[k : k + short_len - ecc_len + (0 if i < short_n else 1)]
            k += len(block)
            ecc = rs_remainder(block, divisor)
            if i < short_n:
                block = [*block, 0]
            blocks.append(block + ecc)
        out = []
        for i in range(len(blocks[0])):
            for j, block in enumerate(blocks):
                if i != short_len - ecc_len or j >= short_n:  # the short blocks' padding is not sent
                    out.append(block[i])
        return out

    def _set(self, x: int, y: int, dark: bool) -> None:
        self.modules[y][x] = dark
        self._function[y][x] = True

    def _draw_function_patterns(self) -> None:
        n = self.size
        for i in range(n):  # timing patterns
            self._set(6, i, i % 2 == 0)
            self._set(i, 6, i % 2 == 0)
        for cx, cy in ((3, 3), (n - 4, 3), (3, n - 4)):  # finders, with their light separators
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    x, y = cx + dx, cy + dy
                    if 0 <= x < n and 0 <= y < n:
                        self._set(x, y, max(abs(dx), abs(dy)) not in (2, 4))
        if self.version >= 2:  # versions 2–6: one alignment pattern, near the bottom right
            c = n - 7
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    self._set(c + dx, c + dy, max(abs(dx), abs(dy)) != 1)
        self._draw_format_bits(0)  # reserves the format areas; drawn again with the mask chosen

    def _draw_format_bits(self, mask: int) -> None:
        data = FORMAT_BITS_M << 3 | mask
        rem = data
        for _ in range(10):
            rem = (rem << 1) ^ ((rem >> 9) * 0x537)
        bits = (data << 10 | rem) ^ 0x5412

        def bit(i: int) -> bool:
            return (bits >> i) & 1 != 0

        n = self.size
        for i in range(6):
            self._set(8, i, bit(i))
        self._set(8, 7, bit(6))
        self._set(8, 8, bit(7))
        self._set(7, 8, bit(8))
        for i in range(9, 15):
            self._set(14 - i, 8, bit(i))
        for i in range(8):
            self._set(n - 1 - i, 8, bit(i))
        for i in range(8, 15):
            self._set(8, n - 15 + i, bit(i))
        self._set(8, n - 8, True)  # the dark module

    def _draw_codewords(self, codewords: list[int]) -> None:
        i = 0
        n = self.size
        for right in range(n - 1, 0, -2):
            if right <= 6:
                right -= 1  # skip the vertical timing column
            for vert in range(n):
                for j in range(2):
                    x = right - j
                    upward = (right + 1) & 2 == 0
                    y = n - 1 - vert if upward else vert
                    if not self._function[y][x] and i < len(codewords) * 8:
                        self.modules[y][x] = (codewords[i >> 3] >> (7 - (i & 7))) & 1 != 0
                        i += 1

    def _apply_mask(self, mask: int) -> None:
        f = MASKS[mask]
        for y in range(self.size):
            for x in range(self.size):
                if not self._function[y][x] and f(x, y) == 0:
                    self.modules[y][x] = not self.modules[y][x]

    def penalty(self) -> int:
        """ISO/IEC 18004's penalty of the current modules (lower: easier to read)."""
        n = self.size
        m = self.modules
        result = 0
        for line in [[m[y][x] for x in range(n)] for y in range(n)] + [[m[y][x] for y in range(n)] for x in range(n)]:
            colour, run = False, 0
            history: deque[int] = deque([0] * 7, 7)
            for dark in line:
                if dark == colour:
                    run += 1
                    if run == 5:
                        result += PENALTY_N1
                    elif run > 5:
                        result += 1
                else:
                    self._add_history(run, history)
                    if not colour:
                        result += self._finder_like(history) * PENALTY_N3
                    colour, run = dark, 1
            if colour:
                self._add_history(run, history)
                run = 0
            self._add_history(run + n, history)
            result += self._finder_like(history) * PENALTY_N3
        for y in range(n - 1):
            for x in range(n - 1):
                if m[y][x] == m[y][x + 1] == m[y + 1][x] == m[y + 1][x + 1]:
                    result += PENALTY_N2
        dark_count = sum(row.count(True) for row in m)
        total = n * n
        result += ((abs(dark_count * 20 - total * 10) + total - 1) // total - 1) * PENALTY_N4
        return result

    def _add_history(self, run: int, history: deque[int]) -> None:
        if history[0] == 0:
            run += self.size  # the light border before the line
        history.appendleft(run)

    def _finder_like(self, h: deque[int]) -> int:
        k = h[1]
        core = k > 0 and h[2] == h[4] == h[5] == k and h[3] == k * 3
        return int(core and h[0] >= k * 4 and h[6] >= k) + int(core and h[6] >= k * 4 and h[0] >= k)

    def svg(self, border: int = 4) -> str:
        """The code as an SVG of one path, in module units (scaled by the page), with its light quiet zone."""
        side = self.size + 2 * border
        runs = []
        for y, row in enumerate(self.modules):
            x = 0
            while x < self.size:
                if row[x]:
                    start = x
                    while x < self.size and row[x]:
                        x += 1
                    runs.append(f"M{start + border},{y + border}h{x - start}v1h{start - x}z")
                else:
                    x += 1
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
            f'<rect width="{side}" height="{side}" fill="#fff"/><path d="{"".join(runs)}" fill="#000"/></svg>'
        )
