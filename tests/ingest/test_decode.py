"""Decoding one file: formats, bit depths, channels, geometry, time, and bad files."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from PIL import Image

from spacessl.ingest.decode import (DecodeSpec, choose_layout, decode_image, decode_one, image_time,
                                    time_from_name)
from tests.ingest.imagefiles import colour8, grey8, grey16, save, set_mtime, truncate

GREY8 = DecodeSpec(size=32, channels="gray", dtype="uint8")
GREY16 = DecodeSpec(size=32, channels="gray", dtype="uint16")
RGB8 = DecodeSpec(size=32, channels="rgb", dtype="uint8")


@pytest.mark.parametrize("suffix", ["png", "tif", "pgm", "jpg", "bmp"])
def test_grey8_formats(tmp_path, suffix):
    a = grey8(1)
    p = save(tmp_path / f"a.{suffix}", a, **({"quality": 100} if suffix == "jpg" else {}))
    out, converted = decode_image(str(p), GREY8)
    assert out.shape == (1, 32, 32) and out.dtype == np.uint8 and not converted
    if suffix == "jpg":
        assert np.abs(out[0].astype(int) - a).mean() < 3
    else:
        np.testing.assert_array_equal(out[0], a)


@pytest.mark.parametrize("suffix", ["png", "tif", "pgm"])
def test_grey16_values_survive(tmp_path, suffix):
    a = grey16(2)
    p = save(tmp_path / f"a.{suffix}", a)
    out, converted = decode_image(str(p), GREY16)
    assert out.dtype == np.uint16 and not converted
    np.testing.assert_array_equal(out[0], a)


def test_big_endian_16bit_tiff(tmp_path):
    a = grey16(3)
    p = tmp_path / "be.tif"
    Image.frombytes("I;16B", (32, 32), a.astype(">u2").tobytes()).save(p)
    out, _ = decode_image(str(p), GREY16)
    np.testing.assert_array_equal(out[0], a)


def test_colour_and_alpha(tmp_path):
    rgb = colour8(4)
    p = save(tmp_path / "c.png", rgb)
    out, converted = decode_image(str(p), RGB8)
    assert out.shape == (3, 32, 32) and not converted
    np.testing.assert_array_equal(out.transpose(1, 2, 0), rgb)
    rgba = np.dstack([rgb, np.full((32, 32), 128, np.uint8)])
    p = save(tmp_path / "ca.png", rgba)
    out, _ = decode_image(str(p), RGB8)
    np.testing.assert_array_equal(out.transpose(1, 2, 0), rgb)  # alpha dropped


def test_conversions_are_reported(tmp_path):
    rgb = colour8(5)
    out, converted = decode_image(str(save(tmp_path / "c.png", rgb)), GREY8)
    assert out.shape == (1, 32, 32) and converted
    np.testing.assert_array_equal(out[0], np.asarray(Image.fromarray(rgb).convert("L")))
    g = grey8(6)
    out, converted = decode_image(str(save(tmp_path / "g.png", g)), RGB8)
    assert converted and all(np.array_equal(out[c], g) for c in range(3))
    out, converted = decode_image(str(save(tmp_path / "g8.png", g)), GREY16)
    assert converted and np.array_equal(out[0], g.astype(np.uint16) * 257)
    a = grey16(7)
    out, converted = decode_image(str(save(tmp_path / "g16.png", a)), GREY8)
    assert converted and np.array_equal(out[0], (a >> 8).astype(np.uint8))
    # grey stored as RGB is not a conversion
    out, converted = decode_image(str(save(tmp_path / "gr.png", np.dstack([g, g, g]))), GREY8)
    assert not converted and np.array_equal(out[0], g)


def test_crop_and_stretch(tmp_path):
    a = np.zeros((40, 80), np.uint8)
    a[:, 20:60] = 200                                    # the central 40x40 square is bright
    p = str(save(tmp_path / "wide.png", a))
    crop, _ = decode_image(p, DecodeSpec(size=20, channels="gray", dtype="uint8", fit="crop"))
    assert crop.shape == (1, 20, 20) and crop.min() == 200
    stretch, _ = decode_image(p, DecodeSpec(size=20, channels="gray", dtype="uint8", fit="stretch"))
    assert stretch[0, :, 0].max() < 50 and stretch[0, :, 10].min() == 200


def test_16bit_resize_keeps_range(tmp_path):
    a = np.full((64, 64), 60000, np.uint16)
    a[:32] = 1000
    out, _ = decode_image(str(save(tmp_path / "a.png", a)), GREY16)
    assert out.dtype == np.uint16 and out.shape == (1, 32, 32)
    assert out[0, 0, 0] == 1000 and out[0, -1, -1] == 60000


def test_large_jpeg_uses_draft_and_stays_close(tmp_path):
    yy, xx = np.mgrid[0:512, 0:512]
    a = ((xx + yy) // 4).astype(np.uint8)
    p = str(save(tmp_path / "big.jpg", a, quality=95))
    out, _ = decode_image(p, GREY8)
    ref = np.asarray(Image.fromarray(a).resize((32, 32), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(out[0].astype(int) - ref).max() < 8


def test_bad_files_give_reasons(tmp_path):
    good = save(tmp_path / "good.png", grey8(8, (64, 64)))
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    truncate(good, tmp_path / "cut.png")
    jpg = save(tmp_path / "good.jpg", colour8(9, (64, 64)))
    truncate(jpg, tmp_path / "cut.jpg")
    results = {name: decode_one(0, str(tmp_path / name), GREY8)
               for name in ["junk.png", "empty.jpg", "cut.png", "cut.jpg", "missing.png"]}
    assert all(r.sample is None and r.error for r in results.values())
    assert results["junk.png"].reason == "unidentified image"
    assert results["cut.png"].reason == "truncated" and "truncated" in results["cut.png"].error
    assert results["cut.jpg"].reason == "truncated"
    assert results["missing.png"].reason == "missing"
    assert decode_one(0, str(good), GREY8).sample is not None


def test_choose_layout(tmp_path):
    g8 = [str(save(tmp_path / f"g{i}.png", grey8(i))) for i in range(3)]
    g16 = str(save(tmp_path / "h.png", grey16(1)))
    rgb = str(save(tmp_path / "c.png", colour8(1)))
    grey_as_rgb = str(save(tmp_path / "gr.png", np.dstack([grey8(5)] * 3)))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"nope")
    assert choose_layout(g8) == ("gray", "uint8")
    assert choose_layout(g8 + [grey_as_rgb, str(junk)]) == ("gray", "uint8")
    assert choose_layout(g8 + [g16]) == ("gray", "uint16")
    assert choose_layout(g8 + [rgb]) == ("rgb", "uint8")
    assert choose_layout(g8 + [g16, rgb]) == ("rgb", "uint8")
    assert choose_layout(g8, channels="rgb", bit_depth=16) == ("rgb", "uint16")
    assert choose_layout([]) == ("gray", "uint8")


def test_time_sources(tmp_path):
    assert time_from_name("cam/img_20200105_123456.png") == _ns(2020, 1, 5, 12, 34, 56)
    assert time_from_name("20080105_0600_gill_themis19_full.pgm") == _ns(2008, 1, 5, 6, 0, 0)
    assert time_from_name("x_2021-03-04T05:06:07.25Z.tif") == _ns(2021, 3, 4, 5, 6, 7) + 250_000_000
    assert time_from_name("00001.png") is None
    assert time_from_name("thg_l1_asf_gako_2011010617_v01.cdf") is None      # hour only: not a frame time
    assert time_from_name("img_20201340_1200.png") is None                     # month 13

    named = save(tmp_path / "img_20200105_123456.png", grey8(1))
    assert image_time(str(named)) == (_ns(2020, 1, 5, 12, 34, 56), "filename")
    exif = Image.Exif()
    exif[306] = "2019:07:08 09:10:11"
    p = tmp_path / "photo.jpg"
    Image.fromarray(colour8(2)).save(p, exif=exif)
    assert image_time(str(p)) == (_ns(2019, 7, 8, 9, 10, 11), "exif")
    plain = save(tmp_path / "plain.png", grey8(3))
    set_mtime(plain, 1_600_000_000.5)
    assert image_time(str(plain)) == (1_600_000_000_500_000_000, "mtime")


def _ns(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000
