"""Files whose timestamps or index mislead (hard_videos.py): every decode mode, for every sampler's
indices, must return exactly what decoding every frame in output order returns; damage is logged."""
import logging

import av
import numpy as np
import pytest

import hard_videos as hard
from conftest import level_index
from pks4_lit.data import decode as decode_module
from pks4_lit.data.decode import BadVideoError, VideoReader
from pks4_lit.data.sampling import sample_indices

MODES = ("auto", "seek", "linear")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard")
    h264 = hard.h264_bframes(d / "bframes.mp4")
    return {
        "packed_avi": hard.packed_bframes_avi(d / "packed.avi"),
        "mp4_no_ctts": hard.without_ctts(h264, d / "no_ctts.mp4"),
        "mp4_bframes": h264,
        "open_gop_start": hard.open_gop_start(hard.h264_bframes(d / "og.mp4", open_gop=True), d / "og_cut.mp4", 2),
        "cut_avi": hard.cut_avi(d / "cut.avi", fraction=0.4),
        "cut_webm": hard.cut_webm(d / "cut.webm", fraction=0.5),
        "cut_webm_tail": hard.cut_webm(d / "cut_tail.webm", fraction=0.9),
        "raw_h264": hard.encode(d / "raw.h264", "libx264", 48, {"bf": "2"}, bf=2, fmt="h264"),  # no timestamps at all
    }


@pytest.fixture(autouse=True)
def fresh_memory():
    """What a process learnt about a file must not leak from one test into the next."""
    for name in ("_BY_OUTPUT_ORDER", "_NO_SEEK", "_WARNED"):
        getattr(decode_module, name, set()).clear()
    yield


def index_sets(n: int) -> list[list[int]]:
    """Single frames, all frames, and each sampler's train (random) and eval (3-clip) indices."""
    rng = np.random.default_rng(0)
    sets = [[0], [1], [2], [n // 2], [n - 1], list(range(n)), [5, 3, 20, 11, 11, 0]]
    for _ in range(4):
        sets += [sample_indices("segment", n, 8, rng=rng), sample_indices("dense", n, 8, 4, rng=rng)]
    for k in range(3):
        sets += [sample_indices("segment", n, 8, clip=k, num_clips=3), sample_indices("dense", n, 8, 4, clip=k, num_clips=3)]
    return [[int(i) for i in s] for s in sets]


def check_every_mode(path, modes=MODES, **reader_kw):
    truth = hard.decode_all(path)
    n = len(truth)
    for mode in modes:
        for idx in index_sets(n):
            with VideoReader(path, **reader_kw) as r:
                assert r.num_frames == n, (mode, r.num_frames, n)
                got = r.decode(idx, mode=mode)
            assert np.array_equal(got, truth[idx]), (mode, idx, level_index(got), level_index(truth[idx]))


# ------------------------------------------------------------------------------ the files are hard
def test_the_files_really_are_the_hard_cases(files):
    packed_pts = hard.frame_pts(files["packed_avi"])
    assert packed_pts != sorted(packed_pts)  # decoded pts out of display order (1,2,4,3,...)
    assert level_index(hard.decode_all(files["packed_avi"])) == list(range(48))  # output order is right
    with av.open(str(files["mp4_no_ctts"])) as c:
        assert all(p.pts == p.dts for p in c.demux(c.streams.video[0]) if p.size)
    assert hard.frame_pts(files["mp4_no_ctts"]) != sorted(hard.frame_pts(files["mp4_no_ctts"]))
    assert level_index(hard.decode_all(files["mp4_no_ctts"])) == list(range(48))
    assert hard.frame_pts(files["mp4_bframes"]) == sorted(hard.frame_pts(files["mp4_bframes"]))
    with av.open(str(files["open_gop_start"])) as c:
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert min(pts) < pts[0]  # frames shown before the first keyframe, decoded after it
    assert level_index(hard.decode_all(files["open_gop_start"]))[0] == 24  # the decoder drops them
    flags = hard.packet_flags(files["cut_avi"])
    assert all(flags) and len(flags) < 120  # index lost: every packet "a keyframe"


# ------------------------------------------------------------------------------ exact frames
@pytest.mark.parametrize("name", ["packed_avi", "mp4_no_ctts", "mp4_bframes", "open_gop_start", "raw_h264"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_sampler_matches_output_order(files, name, mode):
    check_every_mode(files[name], modes=[mode])


@pytest.mark.parametrize("name", ["packed_avi", "mp4_no_ctts"])
def test_reordered_pts_are_caught_while_decoding_too(files, name, monkeypatch):
    """Without the checks at open, the decode itself notices timestamps that go backwards or skip."""
    monkeypatch.setattr(VideoReader, "_output_order_reason", lambda self, times, dts: None)
    check_every_mode(files[name])


def test_reordered_file_is_logged_once_by_id(files, caplog):
    caplog.set_level(logging.WARNING, logger="pks4_lit.data.decode")
    for _ in range(2):
        with VideoReader(files["packed_avi"], video_id="ucf/v_Fencing_g01_c01") as r:
            assert r.order == "output" and r.plan([3, 30]) == [(0, [3, 30])]
            r.decode([3, 30])
    lines = [m for m in caplog.messages if "ucf/v_Fencing_g01_c01" in m]
    assert len(lines) == 1 and "output order" in lines[0]


def test_cut_webm_is_bad_by_default_and_a_small_cut_is_logged(files, caplog):
    """WebM/MKV streams announce no duration of their own: the segment header's length is the reference."""
    with pytest.raises(BadVideoError, match=r"cut off: its frames cover \d+% of the duration"):
        VideoReader(files["cut_webm"])
    with VideoReader(files["cut_webm_tail"]) as r:
        assert 30 <= r.num_frames < 48
    assert any("of the announced duration" in m for m in caplog.messages), caplog.messages


def test_cut_avi_is_bad_by_default(files):
    with pytest.raises(BadVideoError, match=r"cut off: its frames cover \d+% of the duration"):
        VideoReader(files["cut_avi"])


def test_cut_avi_seeks_are_checked_for_keyframes(files, caplog):
    """With the cut-off accepted, seeks that land on P-frames are noticed and the file decoded linearly."""
    caplog.set_level(logging.WARNING, logger="pks4_lit.data.decode")
    check_every_mode(files["cut_avi"], max_missing_fraction=1.0)
    assert any("non-keyframe" in m for m in caplog.messages)
    with VideoReader(files["cut_avi"], max_missing_fraction=1.0) as r:
        assert not r.seekable  # remembered for this file in this process


# ------------------------------------------------------------------------------ damage is visible
def _damaged_mjpeg(path, bad_packets):
    """24 intra-only frames; the bytes of `bad_packets` zeroed, so decoding them raises."""
    hard.encode(path, "mjpeg", 24, {}, pix_fmt="yuvj420p")
    with av.open(str(path)) as c:
        where = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    for k in bad_packets:
        pos, size = where[k]
        data[pos:pos + size] = bytes(size)
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_frame_is_replaced_by_an_earlier_one_and_logged(tmp_path, caplog):
    path = _damaged_mjpeg(tmp_path / "v.avi", [10])
    caplog.set_level(logging.WARNING, logger="pks4_lit.data.decode")
    for mode in MODES:
        with VideoReader(path, video_id="clip42") as r:
            assert level_index(r.decode([0, 5, 9, 10, 15, 20], mode=mode)) == [0, 5, 9, 9, 15, 20], mode
    warning = [m for m in caplog.messages if "clip42" in m][0]
    assert "frames [10]" in warning and "[9]" in warning


def test_too_many_missing_frames_make_the_video_bad(tmp_path):
    path = _damaged_mjpeg(tmp_path / "v.avi", range(12, 24))
    want = [1, 4, 7, 10, 13, 16, 19, 22]  # half of them damaged
    with pytest.raises(BadVideoError, match="4 of 8 wanted frames could not be decoded"):
        VideoReader(path).decode(want)
    with VideoReader(path, max_missing_fraction=0.5) as r:
        assert level_index(r.decode(want)) == [1, 4, 7, 10, 10, 10, 10, 10]


def test_a_missing_frame_is_never_filled_with_a_later_one(tmp_path):
    path = _damaged_mjpeg(tmp_path / "v.avi", [0])
    with pytest.raises(BadVideoError, match="no earlier frame"):
        VideoReader(path, max_missing_fraction=1.0).decode([0, 5])


class _DamagedPacket:
    """A packet whose decode fails, as a corrupt packet mid-file does."""

    def __init__(self, packet):
        self.packet = packet

    def __getattr__(self, name):
        return getattr(self.packet, name)

    def decode(self):
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")


class _DamagingContainer:
    """The reader's container, with its `bad`-th demuxed packet damaged."""

    def __init__(self, container, bad: int):
        self.container, self.bad = container, bad

    def __getattr__(self, name):
        return getattr(self.container, name)

    def demux(self, *args, **kw):
        for k, packet in enumerate(self.container.demux(*args, **kw)):
            yield _DamagedPacket(packet) if k == self.bad else packet


def test_a_damaged_packet_in_output_order_never_shifts_later_frames(files, monkeypatch, caplog):
    """Frames indexed by output order (packed B-frames): a packet that gives no frame must not make every
    later frame land one slot early; the frames after it are missing (filled from earlier, logged)."""
    with VideoReader(files["packed_avi"]) as r:
        monkeypatch.setattr(r, "container", _DamagingContainer(r.container, bad=10))
        with pytest.raises(BadVideoError, match="3 of 4 wanted frames could not be decoded"):
            r.decode([5, 20, 30, 40], mode="linear")
    with VideoReader(files["packed_avi"], max_missing_fraction=1.0) as r:
        assert r.order == "output"
        monkeypatch.setattr(r, "container", _DamagingContainer(r.container, bad=10))
        got = level_index(r.decode([5, 20, 30, 40], mode="linear"))
    assert got[0] == 5
    assert all(g < w for g, w in zip(got[1:], [20, 30, 40])), got   # never a later (shifted) frame
