import numpy as np
import pytest
import av

from conftest import level_index, write_video
from pks4_lit.data.decode import BadVideoError, VideoReader, read_frames

WANT = [0, 5, 3, 20, 23, 23, 11]


@pytest.mark.parametrize("kw", [
    dict(codec="libx264", gop=4),                      # short keyframe gaps: seeking
    dict(codec="libx264", gop=250),                    # one keyframe: linear
    dict(codec="libvpx-vp9", name="v.webm"),           # header says 0 frames
    dict(codec="ffv1", pix_fmt="gray", name="g.mkv"),  # grayscale -> RGB
    dict(codec="libx264", pix_fmt="yuv444p", size=(31, 45)),  # odd size, other pix_fmt
])
@pytest.mark.parametrize("mode", ["auto", "seek", "linear"])
def test_decode_exact_frames_every_mode(tmp_path, kw, mode):
    kw = dict(kw)
    path = write_video(tmp_path / kw.pop("name", "v.mp4"), n=24, **kw)
    with VideoReader(path) as r:
        assert r.num_frames == 24
        frames = r.decode(WANT, mode=mode)
    assert frames.dtype == np.uint8 and frames.shape[0] == len(WANT) and frames.shape[-1] == 3
    assert frames.shape[1:3] == kw.get("size", (32, 48))
    assert level_index(frames) == WANT


def test_webm_header_has_no_frame_count_but_we_count(tmp_path):
    path = write_video(tmp_path / "v.webm", n=17, codec="libvpx-vp9")
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0
    assert VideoReader(path).num_frames == 17


def test_plan_chooses_per_video(tmp_path):
    short = VideoReader(write_video(tmp_path / "s.mp4", n=96, gop=4, step=2))
    long = VideoReader(write_video(tmp_path / "l.mp4", n=96, gop=250, step=2))
    spread = list(range(6, 96, 12))  # 8 segment centres
    assert short.plan(spread) == [(4 * (i // 4), [i]) for i in spread]  # a seek to the keyframe before each
    assert long.plan(spread) == [(0, spread)]  # one keyframe: a single linear pass
    assert short.plan([81, 82, 83]) == [(80, [81, 82, 83])]  # dense clip near the end: one seek
    assert level_index(short.decode(spread), 2) == spread == level_index(long.decode(spread), 2)


def test_variable_frame_rate_samples_evenly_in_time(tmp_path):
    pts = [0, 100, 150, 400, 410, 420, 800, 1000]  # milliseconds
    path = write_video(tmp_path / "vfr.mp4", pts=pts)
    with VideoReader(path) as r:
        assert r.num_frames == 8
        got = level_index(r.decode(range(8)))
    grid = np.linspace(0, 1000, 8)
    nearest = [int(np.argmin(np.abs(np.array(pts) - t))) for t in grid]
    assert got == nearest
    assert got != list(range(8))  # the mapping really is by time, not by frame number


def test_rotation_metadata_is_applied(tmp_path):
    frame = np.zeros((1, 32, 48, 3), np.uint8)
    frame[0, :8, :8] = 255  # marker in the top-left corner
    path = write_video(tmp_path / "r.mp4", frames=frame, rotation=90)
    out = read_frames(path, [0])[0]
    assert out.shape == (48, 32, 3)  # portrait after a 90° turn
    assert out[-4:, :4].mean() > 200 and out[:4, :4].mean() < 50  # counter-clockwise: top-left -> bottom-left


def test_indices_past_the_end_are_clamped(tmp_path):
    path = write_video(tmp_path / "v.mp4", n=10)
    assert level_index(read_frames(path, [8, 9, 15, 100])) == [8, 9, 9, 9]


def test_downscale_short_side_keeps_aspect(tmp_path):
    path = write_video(tmp_path / "v.mp4", n=4, size=(64, 96))
    assert read_frames(path, [0, 1], short_side=32).shape == (2, 32, 48, 3)
    assert read_frames(path, [0], short_side=128).shape == (1, 64, 96, 3)  # never upscaled here


def _audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "audio_only"])
def test_bad_files_raise_bad_video_error(tmp_path, kind):
    path = tmp_path / "bad.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated":
        good = write_video(tmp_path / "good.mp4", n=24).read_bytes()
        path.write_bytes(good[: len(good) // 3])
    elif kind == "audio_only":
        path = tmp_path / "bad.wav"
        _audio_only(path)
    with pytest.raises(BadVideoError) as e:
        read_frames(path, [0, 5, 10])
    assert str(path) in str(e.value)
