"""The JSON writer of float32 arrays against orjson: the same bytes for every value, row slices and top-k lists.

orjson (the Rust ryu crate) is an independent implementation of the same contract, so equal text means the
shortest digits that read back to the same float32, the closest of them, in orjson's notation.
"""

from __future__ import annotations

import threading

import numpy as np
import orjson
import pytest

from app.wire.jsonfloat import round_significant, write_predictions, write_rows

NUMPY = orjson.OPT_SERIALIZE_NUMPY


def reference(a: np.ndarray) -> bytes:
    return orjson.dumps(np.ascontiguousarray(a), option=NUMPY)


def edge_bits() -> np.ndarray:
    """Every exponent with the mantissas where Ryu's special cases live (0: an asymmetric interval; 1; all ones),
    both signs, the subnormals' ends, NaN and ±inf."""
    exponents = np.arange(256, dtype=np.uint32) << 23
    mantissas = np.array([0, 1, 2, 0x7FFFFF, 0x400000, 0x3FFFFF], np.uint32)
    bits = (exponents[:, None] | mantissas[None, :]).ravel()
    return np.concatenate([bits, bits | np.uint32(1 << 31)])


def test_edge_values_match_orjson() -> None:
    a = edge_bits().view(np.float32).reshape(-1, 12)
    (rows,) = write_rows([a])
    assert rows.text == reference(a)


def test_round_numbers_and_notation_boundaries_match_orjson() -> None:
    # Where orjson switches between 0.000001, 1e-7, 1000000000000.0 and 1e+13, and exact powers of ten.
    values = [10.0**e * m for e in range(-45, 38) for m in (1, 1.5, 9.999999, 2.5)] + [3.4028235e38] * 4
    a = np.array(values, np.float32).reshape(-1, 4)
    (rows,) = write_rows([a])
    assert rows.text == reference(a)


def test_two_million_random_bit_patterns_match_orjson() -> None:
    rng = np.random.default_rng(20261126)
    bits = rng.integers(0, 2**32, size=(2000, 1000), dtype=np.uint64).astype(np.uint32)
    a = bits.view(np.float32)
    (rows,) = write_rows([a])
    assert rows.text == reference(a)


@pytest.mark.parametrize("shape", [(1, 1), (1, 128), (3, 0), (129, 128), (1000, 128), (7, 40000)])
def test_rows_are_the_arrays_rows_whatever_the_chunking(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    a = np.tanh(rng.standard_normal(shape)).astype(np.float32)
    b = (rng.standard_normal(shape) * 1e-20).astype(np.float32)
    rows_a, rows_b = write_rows([a, b[:, ::-1]])  # a strided view is written as its values
    assert rows_a.text == reference(a)
    assert rows_b.text == reference(b[:, ::-1])
    for t in {0, shape[0] // 2, shape[0] - 1}:
        assert rows_a.raw(t) == reference(a[t])


def test_a_row_is_valid_json_and_reads_back_to_the_same_float32() -> None:
    rng = np.random.default_rng(7)
    a = rng.standard_normal((50, 33)).astype(np.float32) * np.float32(1e-3)
    (rows,) = write_rows([a])
    for t in range(50):
        row = np.array(orjson.loads(rows.raw(t)), np.float32)
        assert row.tobytes() == a[t].tobytes()


def test_writings_from_many_threads_at_once_each_get_their_own_text() -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((300, 64)).astype(np.float32) for _ in range(8)]
    results: dict[int, bytes] = {}

    def write(n: int) -> None:
        (rows,) = write_rows([arrays[n]])
        results[n] = rows.text

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(results[n] == reference(arrays[n]) for n in range(8))


def test_predictions_match_orjson_of_the_same_dicts_with_escaped_tokens() -> None:
    vocab = ("a", '"', "\\", "\n", "\t", "é", "\u2028", " ", "<unk>", "\x00")
    rng = np.random.default_rng(11)
    ids = rng.integers(0, len(vocab), size=(40, 5))
    probs = rng.random((40, 5)).astype(np.float32)
    rows = write_predictions(ids, probs, vocab)
    expected = [
        [{"token": vocab[i], "p": p} for i, p in zip(r, ps, strict=True)] for r, ps in zip(ids, probs, strict=True)
    ]
    assert rows.text == orjson.dumps(expected, option=NUMPY)
    assert orjson.loads(rows.raw(39)) == orjson.loads(orjson.dumps(expected[39], option=NUMPY))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("digits", [1, 3, 4, 9])
def test_rounding_gives_the_float_nearest_the_correctly_rounded_decimal(dtype: type, digits: int) -> None:
    """Python's "%.{d−1}e" rounds the exact binary value to d digits, half to even; float() reads it back exactly."""
    rng = np.random.default_rng(digits)
    top = 37 if dtype is np.float32 else 300
    v: np.ndarray = (rng.standard_normal(100_000) * 10.0 ** rng.integers(-top - 8, top, 100_000)).astype(dtype)
    v[:6] = [0.0, -0.0, np.inf, -np.inf, 1.0, 886134.995]
    expected: np.ndarray = np.array([float(f"{float(x):.{digits - 1}e}") for x in v], dtype)
    assert round_significant(v, digits).tobytes() == expected.tobytes()
    assert np.isnan(round_significant(np.array([np.nan], dtype), digits)[0])


def test_a_writing_with_digits_writes_the_rounded_values() -> None:
    rng = np.random.default_rng(5)
    a = np.tanh(rng.standard_normal((300, 64))).astype(np.float32)
    (rows,) = write_rows([a], digits=3)
    assert rows.text == reference(round_significant(a, 3))
    written = np.array(orjson.loads(rows.text)).ravel()  # float32 keeps 6 digits: the text is the 3-digit decimal
    assert all(float(f"{x:.2e}") == x for x in written)
