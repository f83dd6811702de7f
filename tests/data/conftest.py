"""Tiny real video files, written with PyAV in each test (nothing is downloaded)."""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

LEVEL0, LEVEL_STEP = 16, 5  # frame i is a flat image of grey level 16 + 5·i: decode back with level_index


def level_index(frames: np.ndarray, step: int = LEVEL_STEP) -> list[int]:
    """Frame numbers of decoded flat frames [T,H,W,3] (inverse of the grey-level code)."""
    return [int(round((float(f.mean()) - LEVEL0) / step)) for f in frames]


def write_video(path, n=24, size=(32, 48), codec="libx264", gop=None, fps=12, pix_fmt="yuv420p", rotation=None,
                pts=None, frames=None, step=LEVEL_STEP):
    """Encode n frames (default: grey-level code) to `path`; `pts` gives explicit timestamps (VFR)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    n = len(pts) if pts is not None else n
    if frames is None:
        frames = np.stack([np.full((h, w, 3), LEVEL0 + step * i, np.uint8) for i in range(n)])
    fmt = "webm" if path.suffix == ".webm" else None
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        opts = {"threads": "1"}
        if gop:
            opts.update(g=str(gop), keyint_min=str(gop)) if codec != "libx264" else opts.update(
                {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"})
        if codec == "libvpx-vp9":
            opts.update(deadline="realtime", **{"cpu-used": "8"})
        if codec == "libx264":
            opts["bf"] = "0"
        s.options = opts
        if rotation is not None:
            s.set_display_rotation(rotation)
        if pts is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture
def video(tmp_path):
    """Factory: video(name, **write_video kwargs) -> path under tmp_path."""
    return lambda name, **kw: write_video(tmp_path / name, **kw)
