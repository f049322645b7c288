"""decode_image: the JPEG fast path gives Pillow's pixels, and every refusal stays clean."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from maskserve.errors import ImageTooLargeError, InvalidImageError
from maskserve.imageio import decode_image
from maskserve.models.synthetic.generator import generate_sample

ORIENTATION_TAG = 0x0112


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """An odd-sized synthetic RGB image (odd sizes exercise chroma upsampling edges)."""
    return Image.fromarray(generate_sample(np.random.default_rng(3), 333, 517).image)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pillow_pixels(data: bytes) -> np.ndarray:
    """The judge: Pillow alone, EXIF orientation applied, converted to RGB."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(image.convert("RGB"))


def rotated_exif(image: Image.Image) -> Image.Exif:
    exif = image.getexif()
    exif[ORIENTATION_TAG] = 6  # "rotate 90° clockwise to display"
    return exif


JPEG_VARIANTS = {
    "4:2:0 q75": lambda im: encode(im, quality=75),
    "4:4:4 q95": lambda im: encode(im, quality=95, subsampling=0),
    "4:2:2": lambda im: encode(im, subsampling=1),
    "progressive": lambda im: encode(im, progressive=True),
    "grayscale": lambda im: encode(im.convert("L")),
    "cmyk": lambda im: encode(im.convert("CMYK")),
    "exif rotated": lambda im: encode(im, exif=rotated_exif(im)),
}


@pytest.mark.parametrize("variant", sorted(JPEG_VARIANTS))
def test_jpeg_pixels_equal_pillows(photo: Image.Image, variant: str) -> None:
    data = JPEG_VARIANTS[variant](photo)
    expected = pillow_pixels(data)
    pixels = decode_image(data)
    assert pixels.dtype == np.uint8
    assert pixels.shape == expected.shape
    assert np.array_equal(pixels, expected)


def test_exif_rotation_swaps_the_sides(photo: Image.Image) -> None:
    pixels = decode_image(JPEG_VARIANTS["exif rotated"](photo))
    assert pixels.shape == (photo.width, photo.height, 3)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_other_formats_decode_through_pillow(photo: Image.Image, fmt: str) -> None:
    data = encode(photo, fmt, lossless=True) if fmt == "WEBP" else encode(photo, fmt)
    assert np.array_equal(decode_image(data), pillow_pixels(data))


def test_palette_png_becomes_rgb(photo: Image.Image) -> None:
    data = encode(photo.convert("P"), "PNG")
    pixels = decode_image(data)
    assert pixels.shape == (photo.height, photo.width, 3)
    assert np.array_equal(pixels, pillow_pixels(data))


def test_truncated_jpeg_is_invalid(photo: Image.Image) -> None:
    data = encode(photo)
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_jpeg_header_over_the_limit_is_refused_before_decoding() -> None:
    data = bytearray(encode(Image.new("RGB", (16, 16), (9, 9, 9))))
    sof = data.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, H, W
    data[sof + 5 : sof + 9] = (8_000).to_bytes(2, "big") * 2
    with pytest.raises(ImageTooLargeError, match="8000x8000"):
        decode_image(bytes(data), max_pixels=40_000_000)


def test_text_posing_as_an_image_is_invalid() -> None:
    with pytest.raises(InvalidImageError, match="not a supported image"):
        decode_image(b"GIF89a? no, just text pretending to be an image")


def test_sixteen_bit_greyscale_png_keeps_its_tones() -> None:
    """Pillow's convert("RGB") clips 16-bit values: every pixel came out 255."""
    import io

    from PIL import Image

    ramp = (np.arange(64, dtype=np.uint16) * 1024).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    pixels = decode_image(buffer.getvalue())
    assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[:, :, 0], (ramp >> 8).astype(np.uint8))


def test_formats_other_than_jpeg_png_webp_are_refused() -> None:
    import io

    from PIL import Image

    for fmt in ("BMP", "GIF", "TIFF"):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, fmt)
        with pytest.raises(InvalidImageError, match="not a supported image"):
            decode_image(buffer.getvalue())


def png_rgb16(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    height, width, _ = values.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_sixteen_bit_rgb_png_keeps_the_high_bytes() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    data = png_rgb16(values)
    pixels = decode_image(data)
    np.testing.assert_array_equal(pixels, (values >> 8).astype(np.uint8))
    np.testing.assert_array_equal(pixels, pillow_pixels(data))


@pytest.mark.parametrize("mode", ["LA", "L", "RGBA", "P+transparency"])
def test_png_modes_decode_as_pillow_converts_them(photo: Image.Image, mode: str) -> None:
    if mode == "P+transparency":
        image = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        image.info["transparency"] = 3
    else:
        image = photo.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **({"transparency": 3} if mode == "P+transparency" else {}))
    data = buffer.getvalue()
    reopened = Image.open(io.BytesIO(data))
    assert reopened.mode == mode.split("+")[0]
    np.testing.assert_array_equal(decode_image(data), pillow_pixels(data))
