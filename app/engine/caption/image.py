"""Images in: a PNG or JPEG file's bytes → the 64 × 64 RGB pixels a caption model reads. Every bad file is refused
by a typed error naming the problem (BadImage and its kinds), never decoded further than it must be.

The order of the checks, each before anything costlier:
1. The bytes: at most MAX_BYTES (1 MiB), and not empty.
2. The header only (Pillow's `Image.open` reads no pixel data): PNG or JPEG and no other format (Pillow's other
   decoders are never reached); the size it claims at most MAX_SIDE × MAX_SIDE and not 0 × 0. A decompression
   bomb (a few kilobytes that claim 30,000 × 30,000 pixels) is refused here, from its claim, without decoding:
   its claim is over the limit. Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS) also raises at open for the
   largest claims; that is the same refusal.
3. The colour mode, from the header too (decide before decoding). Converted, because the conversion is exact or
   has one obvious meaning: RGB; L (grey) and 1 (black and white) as grey RGB; P (a palette) through its
   palette; RGBA, LA, PA and a palette or grey image with a transparent colour composited on white (the scenes'
   background: a transparent pixel is background); 16-bit grey PNG (I;16) as its top byte, which is PNG's own
   8-bit rounding of it (16-bit RGB PNG Pillow already reads as RGB so). Refused: CMYK and YCCK (Adobe JPEG):
   Pillow's conversion ignores the file's colour profile, and with Adobe's inverted CMYK common the colours
   come out wrong: a captioner that reads colours would caption colours the file does not show, silently; any
   other mode (I, F, …) names itself, as no PNG or JPEG this page writes has it.
4. The decode (`load`): a truncated or corrupt file is refused (Pillow's LOAD_TRUNCATED_IMAGES stays False: a
   half-image padded with grey would be captioned as if whole).
5. The EXIF orientation of a JPEG from a camera is applied: "left of" is about the picture as a person sees it.
6. To 64 × 64: a picture that is not square is centred on a white square of its longer side (a circle stays
   round); then resized by area averaging (Pillow's BOX filter: each output pixel the mean of the pixels it
   covers, so that a 128 × 128 drawing of a scene reads as the same scene). At 64 × 64 nothing is resampled.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from app.engine.caption.model import IMAGE_SIZE
from app.engine.errors import EngineError, InputTooLong

MAX_BYTES = 1 << 20  # 1 MiB
MAX_SIDE = 256
FORMATS = ("PNG", "JPEG")
CONVERTED = {"RGB", "L", "1", "P", "RGBA", "LA", "PA", "I;16", "I;16B", "I;16L"}
REFUSED = {"CMYK": "CMYK", "YCCK": "YCCK"}
WHITE = (255, 255, 255)
# Magic numbers of formats people upload by mistake, to name them in the refusal.
OTHER_FORMATS = (
    (b"GIF8", "a GIF"), (b"BM", "a BMP"), (b"RIFF", "a RIFF file (WebP or WAV)"), (b"II*\0", "a TIFF"),
    (b"MM\0*", "a TIFF"), (b"%PDF", "a PDF"), (b"<svg", "an SVG"), (b"<?xml", "an XML file (SVG?)"),
)  # fmt: skip


class BadImage(EngineError):
    """Bytes that are not an image this family reads, with the problem named."""


class NotAnImage(BadImage):
    """Not a PNG or JPEG (another format, or not an image at all)."""


class ImageTooLarge(BadImage, InputTooLong):
    """Over MAX_BYTES, or a header that claims more than MAX_SIDE pixels a side (a decompression bomb among them):
    a 413 like any input over its length (app/web/errors.py maps InputTooLong). `what`: "bytes" or "pixels"."""

    def __init__(self, message: str, what: str) -> None:
        EngineError.__init__(self, message)
        self.what = what


class EmptyImage(BadImage):
    """No bytes, or a header that claims no pixels (0 × N)."""


class TruncatedImage(BadImage):
    """A header that promises more pixel data than the file holds, or pixel data that does not decode."""


class UnsupportedColourMode(BadImage):
    """A colour mode with no faithful conversion to RGB (CMYK), named."""

    def __init__(self, mode: str, why: str) -> None:
        super().__init__(f"the image's colour mode is {mode}: {why}")
        self.mode = mode


def _open(data: bytes) -> Image.Image:
    """The header, parsed by Pillow's PNG or JPEG plugin only; no pixel data is read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"the image claims too many pixels to decode (a decompression bomb?): {e}; the limit "
                            f"is {MAX_SIDE} × {MAX_SIDE}", "pixels") from None  # fmt: skip
    except UnidentifiedImageError:
        _refuse_empty_png(data)
        if data[:8] == PNG_SIGNATURE or data[:3] == JPEG_SOI:
            kind = "PNG" if data[:8] == PNG_SIGNATURE else "JPEG"
            raise NotAnImage(f"the file starts as a {kind} but its header is broken or incomplete") from None
        what = next((name for magic, name in OTHER_FORMATS if data.lstrip()[: len(magic)] == magic), None)
        found = f"it is {what}" if what else "its bytes are neither"
        raise NotAnImage(f"the file is not a PNG or JPEG image: {found}; send a PNG or a JPEG") from None
    except (OSError, SyntaxError, ValueError) as e:  # a header Pillow could not parse: broken, not another format
        raise NotAnImage(f"the file's header is not a valid PNG or JPEG header: {e}") from None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"


def _refuse_empty_png(data: bytes) -> None:
    """A PNG whose header claims 0 pixels a side, which Pillow will not identify at all: EmptyImage, named."""
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if w == 0 or h == 0:
            raise EmptyImage(f"the image is {w} × {h} pixels: it has none")


def _check_header(image: Image.Image) -> None:
    w, h = image.size
    if w == 0 or h == 0:
        raise EmptyImage(f"the image is {w} × {h} pixels: it has none")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise ImageTooLarge(f"the image is {w} × {h} pixels; the limit is {MAX_SIDE} × {MAX_SIDE} (it was not "
                            "decoded). Scale it down.", "pixels")  # fmt: skip
    if image.mode in REFUSED:
        raise UnsupportedColourMode(
            image.mode, "its conversion to RGB needs the file's colour profile, which this server does not apply, "
            "and the colours would come out wrong. Save it as RGB."
        )  # fmt: skip
    if image.mode not in CONVERTED:
        raise UnsupportedColourMode(image.mode, f"this server reads {sorted(CONVERTED)}. Save it as RGB.")


def _to_rgb(image: Image.Image) -> Image.Image:
    """The decoded image as RGB, transparency on white."""
    if image.mode.startswith("I;16"):
        grey = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)  # PNG's 16 → 8 bits: the top byte
        return Image.fromarray(grey).convert("RGB")
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("PA", "LA", "RGBA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("L", "1") and "transparency" in image.info:
        return _to_rgb(image.convert("LA"))
    return image.convert("RGB")


def to_square(image: Image.Image) -> Image.Image:
    """Centred on a white square of its longer side, then IMAGE_SIZE × IMAGE_SIZE by area averaging."""
    w, h = image.size
    if w != h:
        side = max(w, h)
        square = Image.new("RGB", (side, side), WHITE)
        square.paste(image, ((side - w) // 2, (side - h) // 2))
        image = square
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return image


def read_image(data: bytes) -> NDArray[np.uint8]:
    """A PNG or JPEG file's bytes → (64, 64, 3) uint8 RGB, or a BadImage naming what is wrong with them."""
    if not data:
        raise EmptyImage("the file is empty: send a PNG or JPEG image")
    if len(data) > MAX_BYTES:
        raise ImageTooLarge(f"the file has {len(data)} bytes; the limit is {MAX_BYTES} (1 MiB)", "bytes")
    image = _open(data)
    _check_header(image)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise TruncatedImage(f"the image's pixel data is truncated or corrupt: {e}") from None
    with contextlib.suppress(OSError, SyntaxError, ValueError, KeyError, TypeError):  # a malformed EXIF: as stored
        image = ImageOps.exif_transpose(image)
    pixels: NDArray[np.uint8] = np.array(to_square(_to_rgb(image)), dtype=np.uint8)  # writable, for torch
    return pixels


__all__ = [
    "MAX_BYTES", "MAX_SIDE", "BadImage", "EmptyImage", "ImageTooLarge", "NotAnImage", "TruncatedImage",
    "UnsupportedColourMode", "read_image", "to_square",
]  # fmt: skip
