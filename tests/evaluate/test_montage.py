import numpy as np
from PIL import Image

from spacessl.evaluate.montage import montage, thumbnail_png


def test_image_and_waveform_montages(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 16383, size=(10, 1, 32, 32), dtype=np.uint16)
    waves = rng.normal(size=(5, 3, 500)).astype(np.float32)
    p1 = montage(frames, tmp_path / "a" / "frames.png", modality="image", titles=[f"#{i}" for i in range(10)],
                 ncols=4, suptitle="frames", row_labels={0: "nearest", 2: "random"})
    p2 = montage(waves, tmp_path / "waves.png", modality="waveform", sampling_rate_hz=100.0)
    p3 = montage(waves[:0], tmp_path / "empty.png", modality="waveform")
    for p in (p1, p2, p3):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
            assert np.asarray(im.convert("L")).std() > 0
    assert thumbnail_png(frames[0], "image")[:4] == b"\x89PNG"
    assert thumbnail_png(waves[0], "waveform")[:4] == b"\x89PNG"
