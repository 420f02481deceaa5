"""Images in (app/engine/caption/image.py): a PNG or JPEG becomes the 64 × 64 RGB pixels a caption model reads;
every bad file is refused by its own error, naming the problem, from its header where the header suffices."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.engine.caption.image import (
    MAX_BYTES,
    EmptyImage,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    UnsupportedColourMode,
    read_image,
)
from app.training.tasks.shapes_data import draw, pixels, scenes

SCENE = scenes(seed=5, n=1)[0]


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def claims(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header (IHDR, its CRC made right) claims width × height; the pixel data is left as it was."""
    body = bytearray(data[16:29])
    body[0:8] = struct.pack(">II", width, height)
    return data[:16] + bytes(body) + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body))) + data[33:]


def test_a_scene_as_png_reads_back_as_its_own_pixels() -> None:
    assert np.array_equal(read_image(encode(draw(SCENE))), pixels(SCENE))


def test_a_larger_drawing_of_a_scene_is_averaged_back_to_it() -> None:
    """128 × 128 (each pixel doubled) → 64 × 64 by area averaging: every 2 × 2 block is one colour, so exact."""
    big = draw(SCENE).resize((128, 128), Image.Resampling.NEAREST)
    assert np.array_equal(read_image(encode(big)), pixels(SCENE))


def test_a_picture_that_is_not_square_is_centred_on_white() -> None:
    wide = Image.new("RGB", (64, 32), (40, 80, 220))
    out = read_image(encode(wide))
    assert out.shape == (64, 64, 3)
    assert (out[:16] == 255).all() and (out[48:] == 255).all() and (out[16:48] == (40, 80, 220)).all()


def test_a_jpeg_reads_close_to_what_was_drawn() -> None:
    out = read_image(encode(draw(SCENE), "JPEG", quality=95))
    assert out.shape == (64, 64, 3) and np.abs(out.astype(int) - pixels(SCENE)).mean() < 3


def test_a_cameras_exif_orientation_is_applied() -> None:
    """Stored with red on the left, tagged "rotate 180°": a person sees red on the right, and so does the model."""
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    image.paste((220, 40, 40), (0, 0, 32, 64))
    exif = Image.Exif()
    exif[0x0112] = 3
    out = read_image(encode(image, "JPEG", quality=95, exif=exif.tobytes()))
    assert out[32, 60, 1] < 100 and out[32, 4, 1] > 200  # red (low green) now on the right


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_and_black_and_white_read_as_grey_rgb(mode: str) -> None:
    image = Image.new("L", (64, 64), 255)
    image.paste(0, (10, 10, 30, 30))
    out = read_image(encode(image.convert(mode)))
    assert (out[20, 20] == 0).all() and (out[50, 50] == 255).all()
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_a_palette_image_reads_through_its_palette_and_its_transparent_colour_as_white() -> None:
    image = draw(SCENE).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    assert np.array_equal(read_image(encode(image)), pixels(SCENE))
    index = image.getpixel((0, 0))  # the background's palette entry, now declared transparent
    painted = Image.new("P", (64, 64), 0)
    painted.putpalette([0, 0, 0, 220, 40, 40] + [0] * 762)
    painted.paste(1, (0, 0, 20, 20))
    out = read_image(encode(painted, transparency=0))
    assert (out[40, 40] == 255).all() and (out[5, 5] == (220, 40, 40)).all() and index is not None


def test_transparency_is_composited_on_white() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # transparent black: white behind it
    image.paste((220, 40, 40, 255), (0, 0, 20, 20))
    image.paste((0, 0, 0, 128), (40, 40, 60, 60))  # half-transparent black: grey
    out = read_image(encode(image))
    assert (out[50, 10] == 255).all() and (out[5, 5] == (220, 40, 40)).all()
    assert (np.abs(out[50, 50].astype(int) - 127) <= 1).all()
    grey = read_image(encode(image.convert("LA")))
    assert (grey[50, 10] == 255).all()


def test_sixteen_bit_grey_reads_as_its_top_byte() -> None:
    values = np.full((64, 64), 0xFFFF, dtype=np.uint16)
    values[:32] = 0x8040  # top byte 0x80
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    out = read_image(encode(image))
    assert (out[:32] == 0x80).all() and (out[32:] == 255).all()


def test_cmyk_is_refused_naming_the_mode_and_why() -> None:
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG")
    with pytest.raises(UnsupportedColourMode, match=r"colour mode is CMYK: .*colour profile"):
        read_image(data)


def test_bytes_that_are_not_an_image_are_refused_naming_what_they_are() -> None:
    with pytest.raises(NotAnImage, match="not a PNG or JPEG image: its bytes are neither"):
        read_image(b"hello, this is text")
    with pytest.raises(NotAnImage, match="it is a GIF"):
        read_image(encode(draw(SCENE), "GIF"))
    with pytest.raises(NotAnImage, match="it is a BMP"):
        read_image(encode(draw(SCENE), "BMP"))


def test_empty_bytes_and_a_header_of_no_pixels_are_refused() -> None:
    with pytest.raises(EmptyImage, match="the file is empty"):
        read_image(b"")
    one = encode(Image.new("RGB", (4, 4), "white"))
    with pytest.raises(EmptyImage, match="0 × 0 pixels: it has none"):
        read_image(claims(one, 0, 0))
    with pytest.raises(EmptyImage, match="0 × 4 pixels"):
        read_image(claims(one, 0, 4))


def test_more_than_a_mebibyte_is_refused_before_it_is_read() -> None:
    with pytest.raises(ImageTooLarge, match=f"the file has {MAX_BYTES + 1} bytes; the limit is {MAX_BYTES}"):
        read_image(b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES - 7))


def test_a_header_over_256_a_side_is_refused_from_the_header_without_decoding() -> None:
    """The pixel data is cut off after the header: a decode would find it truncated; the refusal names the size,
    so nothing past the header was read."""
    data = encode(Image.new("RGB", (300, 20), "white"))
    cut = data[: data.index(b"IDAT") + 8]  # 4 bytes of the pixel data's chunk, then nothing
    with pytest.raises(TruncatedImage):
        read_image(claims(cut, 30, 20))  # the same bytes claiming a size within the limit: truncated
    with pytest.raises(ImageTooLarge, match=r"300 × 20 pixels; the limit is 256 × 256 \(it was not decoded"):
        read_image(cut)
    with pytest.raises(ImageTooLarge, match="20 × 300"):
        read_image(encode(Image.new("RGB", (20, 300), "white")))


@pytest.mark.parametrize(("width", "height"), [(12_000, 12_000), (40_000, 40_000), (2**31 - 1, 2**31 - 1)])
def test_a_decompression_bomb_is_refused_from_its_claim(width: int, height: int) -> None:
    bomb = claims(encode(Image.new("RGB", (4, 4), "white")), width, height)
    with pytest.raises(ImageTooLarge, match="limit is 256 × 256"):
        read_image(bomb)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_file_is_refused_as_truncated(fmt: str) -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noise, fmt)
    with pytest.raises(TruncatedImage, match="truncated or corrupt"):
        read_image(data[: len(data) // 2])


def test_a_broken_or_incomplete_header_is_refused_naming_it() -> None:
    data = bytearray(encode(draw(SCENE)))
    data[20] ^= 0xFF  # the IHDR's width changed, its CRC now wrong
    with pytest.raises(NotAnImage, match="starts as a PNG but its header is broken or incomplete"):
        read_image(bytes(data))
    with pytest.raises(NotAnImage, match="starts as a PNG"):
        read_image(bytes(data[:33]))  # the header and nothing after it
    with pytest.raises(NotAnImage, match="starts as a JPEG"):
        read_image(encode(draw(SCENE), "JPEG")[:20])
