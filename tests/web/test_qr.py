"""The join URL's QR code (app/web/rooms/qr.py), read back by a reader written here from ISO/IEC 18004: the format
information is one of level M's eight valid words, every block's codewords are a Reed–Solomon codeword (its
syndromes, computed with GF(2⁸) log tables of its own, are zero), and the data codewords spell the text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.web.rooms.qr import QrCode, TooLong

# Level M's format words (after the 0x5412 mask) for masks 0–7, as ISO/IEC 18004's table lists them
FORMAT_M = [
    "101010000010010", "101000100100101", "101111001111100", "101101101001011",
    "100010111111001", "100000011001110", "100111110010111", "100101010100000",
]  # fmt: skip
MASKS: list[Callable[[int, int], bool]] = [
    lambda x, y: (x + y) % 2 == 0,
    lambda x, y: y % 2 == 0,
    lambda x, y: x % 3 == 0,
    lambda x, y: (x + y) % 3 == 0,
    lambda x, y: (x // 3 + y // 2) % 2 == 0,
    lambda x, y: (x * y) % 2 + (x * y) % 3 == 0,
    lambda x, y: ((x * y) % 2 + (x * y) % 3) % 2 == 0,
    lambda x, y: ((x + y) % 2 + (x * y) % 3) % 2 == 0,
]
BLOCKS_M = {1: (1, 10), 2: (1, 16), 3: (1, 26), 4: (2, 18), 5: (2, 24), 6: (4, 16)}  # version → (blocks, ECC each)

EXP = [0] * 512
LOG = [0] * 256
_v = 1
for _i in range(255):
    EXP[_i] = EXP[_i + 255] = _v
    LOG[_v] = _i
    _v = (_v << 1) ^ (0x11D if _v & 0x80 else 0)


def syndromes(codeword: list[int], n: int) -> list[int]:
    """The codeword, a polynomial (first byte highest), at α⁰ … α^(n−1)."""
    out = []
    for i in range(n):
        s = 0
        for c in codeword:
            s = (EXP[LOG[s] + i] if s else 0) ^ c
        out.append(s)
    return out


def function_module(x: int, y: int, size: int, version: int) -> bool:
    if x == 6 or y == 6:
        return True
    if (x < 9 and y < 9) or (x >= size - 8 and y < 9) or (x < 9 and y >= size - 8):
        return True
    c = size - 7
    return version >= 2 and abs(x - c) <= 2 and abs(y - c) <= 2


def read(code: QrCode) -> bytes:
    m, n, version = code.modules, code.size, code.version
    fmt = "".join("1" if m[i if i < 6 else i + 1][8] else "0" for i in (0, 1, 2, 3, 4, 5)) + "".join(
        "1" if m[y][x] else "0" for x, y in ((8, 7), (8, 8), (7, 8))
    )
    fmt += "".join("1" if m[8][14 - i] else "0" for i in range(9, 15))
    word = fmt[::-1]  # bit 0 (the lowest) was drawn first
    assert word in FORMAT_M, f"format word {word} is not one of level M's"
    mask = MASKS[FORMAT_M.index(word)]
    bits = []
    for right in range(n - 1, 0, -2):
        if right <= 6:
            right -= 1
        for vert in range(n):
            for j in range(2):
                x = right - j
                y = n - 1 - vert if (right + 1) & 2 == 0 else vert
                if not function_module(x, y, n, version):
                    bits.append(int(m[y][x] != mask(x, y)))
    codewords = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits) - len(bits) % 8, 8)]
    blocks_n, ecc = BLOCKS_M[version]
    short_n = blocks_n - len(codewords) % blocks_n
    short_len = len(codewords) // blocks_n
    blocks: list[list[int]] = [[] for _ in range(blocks_n)]
    k = 0
    for i in range(short_len + 1):
        for j in range(blocks_n):
            if i != short_len - ecc or j >= short_n:
                blocks[j].append(codewords[k])
                k += 1
    data: list[int] = []
    for block in blocks:
        assert syndromes(block, ecc) == [0] * ecc, "a block is not a Reed–Solomon codeword"
        data += block[: len(block) - ecc]
    stream = "".join(f"{b:08b}" for b in data)
    assert stream[:4] == "0100", "not byte mode"
    length = int(stream[4:12], 2)
    return bytes(int(stream[12 + 8 * i : 20 + 8 * i], 2) for i in range(length))


@pytest.mark.parametrize(
    "text",
    ["x", "http://127.0.0.1:8000/join/K7M2QX", "https://lecture.example.org:8443/join/ABCDEF", "é" * 40, "y" * 106],
)
def test_the_code_reads_back_as_its_text(text: str) -> None:
    code = QrCode(text)
    assert code.size == 4 * code.version + 17
    assert read(code) == text.encode()


def test_the_smallest_version_that_holds_the_text_is_used() -> None:
    assert [QrCode("a" * n).version for n in (14, 15, 26, 27, 106)] == [1, 2, 2, 3, 6]


def test_a_text_too_long_for_version_6_is_refused() -> None:
    with pytest.raises(TooLong):
        QrCode("z" * 107)


def test_the_svg_has_a_quiet_zone_and_one_square_per_module() -> None:
    code = QrCode("http://127.0.0.1:8000/join/K7M2QX")
    svg = code.svg(border=4)
    side = code.size + 8
    assert f'viewBox="0 0 {side} {side}"' in svg
    dark = sum(row.count(True) for row in code.modules)
    drawn = sum(int(run.split("h")[1].split("v")[0]) for run in svg.split('d="')[1].split('"')[0].split("M")[1:])
    assert drawn == dark
