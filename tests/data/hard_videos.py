"""Video files whose timestamps or index mislead a decoder, written with PyAV (nothing downloaded).

  packed_bframes_avi  MPEG-4 Part 2 AVI with *packed* B-frames, the XviD/DivX layout of UCF101/HMDB51:
                      FFmpeg's mpeg4 encoder writes B-frames unpacked, so the packets are repacked here
                      as DivX 5 does: a P-VOP and the following B-VOP share one AVI chunk, the next B-VOPs
                      follow, and a 2-byte not-coded VOP (N-VOP) keeps one chunk per frame; the user
                      data string "DivX503b1393p" tells FFmpeg's decoder so. Decoded frame pts come out
                      1,2,4,3,5,7,6… (what Megamind.avi from OpenCV's samples shows).
  without_ctts        an H.264 MP4 with B-frames remuxed with pts = dts: no composition offsets.
  open_gop_start      an H.264 MP4 cut to start at an open-GOP keyframe: leading B-frames whose
                      references are not in the file.
  cut_avi             an MS-MPEG4 v2 AVI cut to a fraction of its size: no index, so FFmpeg flags every
                      packet as a keyframe and seeks land on P-frames.
Frames carry the grey-level code of conftest.py in their top half (`level_index` reads it back).
"""
from pathlib import Path

import av
import numpy as np

from conftest import LEVEL0, LEVEL_STEP

VOP = b"\x00\x00\x01\xb6"  # MPEG-4 Part 2 VOP start code; the next 2 bits are the coding type
DIVX_PACKED = b"\x00\x00\x01\xb2DivX503b1393p"  # user data: DivX 5.03 build 1393, packed bitstream


def coded_frames(n: int, size=(64, 96), texture: bool = False):
    """n RGB frames [H,W,3]: grey level LEVEL0 + LEVEL_STEP·i (step 1 past 48 frames); `texture`: moving noise below."""
    h, w = size
    step = LEVEL_STEP if LEVEL0 + LEVEL_STEP * (n - 1) <= 255 else 1
    tex = np.random.default_rng(0).integers(0, 256, (h // 2, 2 * w, 3), dtype=np.uint8)
    for i in range(n):
        f = np.full((h, w, 3), LEVEL0 + step * i, np.uint8)
        if texture:
            f[h // 2:] = tex[:, (3 * i) % w:(3 * i) % w + w]
        yield f


def encode(path, codec: str, n: int, options: dict, gop: int = 12, bf: int = 0, texture=False, fmt=None,
           pix_fmt="yuv420p") -> Path:
    path = Path(path)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=12)
        s.width, s.height, s.pix_fmt = 96, 64, pix_fmt
        s.codec_context.gop_size, s.codec_context.max_b_frames = gop, bf
        s.options = {"threads": "1", **options}
        for f in coded_frames(n, texture=texture):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def h264_bframes(path, n=48, gop=12, bf=2, open_gop=False) -> Path:
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0" + (":open-gop=1" if open_gop else "")
    return encode(path, "libx264", n, {"bf": str(bf), "x264-params": params}, gop=gop, bf=bf)


def _remux(src, dst, packets_of):
    """Copy the video stream of `src` into `dst`, packets (decode order) rewritten by `packets_of(list)`."""
    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        s = c.streams.video[0]
        o = out.add_stream_from_template(s)
        for p in packets_of([p for p in c.demux(s) if p.size]):
            p.stream = o
            out.mux(p)
    return Path(dst)


def without_ctts(src, dst) -> Path:
    def pts_equals_dts(packets):
        first = packets[0].dts
        for p in packets:
            p.dts -= first
            p.pts = p.dts
        return packets
    return _remux(src, dst, pts_equals_dts)


def open_gop_start(src, dst, keyframe: int) -> Path:
    """`src` from its `keyframe`-th keyframe (decode order) on."""
    def cut(packets):
        k = [i for i, p in enumerate(packets) if p.is_keyframe][keyframe]
        return packets[k:]
    return _remux(src, dst, cut)


def _vops(data: bytes) -> tuple[bytes, list[bytes]]:
    head, *rest = data.split(VOP)
    return head, [VOP + r for r in rest]


def _vop_type(data: bytes) -> str:
    return "IPBS"[_vops(data)[1][0][4] >> 6]


def _n_vop(time_bits: int) -> bytes:
    """A not-coded P-VOP: type 01, modulo_time_base 0, marker, time increment 0, marker, vop_coded 0, stuffing."""
    bits = "01" + "0" + "1" + "0" * time_bits + "1" + "0"
    bits += "0" + "1" * (-(len(bits) + 1) % 8)
    return VOP + int(bits, 2).to_bytes(len(bits) // 8, "big")


def packed_bframes_avi(path, n=48, gop=12, bf=2) -> Path:
    """See the module docstring. mpeg4 at 12 fps: 4 bits of VOP time increment."""
    path = Path(path)
    plain = encode(path.with_suffix(".unpacked.avi"), "mpeg4", n, {"bf": str(bf), "qmin": "1", "qmax": "2",
                                                                   "sc_threshold": "1000000000"}, gop=gop, bf=bf)
    with av.open(str(plain)) as c:
        s = c.streams.video[0]
        packets = [bytes(p) for p in c.demux(s) if p.size]
        with av.open(str(path), "w", format="avi") as out:
            o = out.add_stream_from_template(s)
            chunks, i = [], 0
            while i < len(packets):
                data = packets[i]
                if i == 0:  # after the VOL header: the DivX user data that switches on packed-B decoding
                    head, vops = _vops(data)
                    data = head + DIVX_PACKED + b"".join(vops)
                if _vop_type(data) in "IP" and i + 1 < len(packets) and _vop_type(packets[i + 1]) == "B":
                    chunks.append(data + packets[i + 1])  # reference + first B in one chunk
                    i += 2
                    while i < len(packets) and _vop_type(packets[i]) == "B":
                        chunks.append(packets[i])
                        i += 1
                    chunks.append(_n_vop(time_bits=4))  # the slot the packed B-frame freed
                else:
                    chunks.append(data)
                    i += 1
            for k, data in enumerate(chunks):
                p = av.Packet(data)
                p.pts = p.dts = k
                p.time_base, p.stream = s.time_base, o
                p.is_keyframe = _vop_type(data) == "I"
                out.mux(p)
    plain.unlink()
    return path


def cut_avi(path, fraction=0.4, n=120, gop=30) -> Path:
    """An MS-MPEG4 v2 AVI (textured, so P-frames carry real data) cut to `fraction` of its bytes."""
    path = Path(path)
    full = encode(path.with_suffix(".full.avi"), "msmpeg4v2", n, {"qmin": "1", "qmax": "3",
                                                                  "sc_threshold": "1000000000"}, gop=gop, texture=True)
    data = full.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    full.unlink()
    return path


def cut_webm(path, fraction=0.5, n=48) -> Path:
    """A VP9 WebM (the SSv2 and synthetic-set format) cut to `fraction` of its bytes: Matroska has no
    per-stream duration, only the segment header's, which the cut file still carries."""
    path = Path(path)
    full = encode(path.with_suffix(".full.webm"), "libvpx-vp9", n, {"deadline": "realtime", "cpu-used": "8"},
                  texture=True)
    data = full.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    full.unlink()
    return path


def decode_all(path) -> np.ndarray:
    """Every frame in decoder output order [N,H,W,3]: the reference every decode mode must match."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def frame_pts(path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def packet_flags(path) -> list[bool]:
    with av.open(str(path)) as c:
        return [p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size]
