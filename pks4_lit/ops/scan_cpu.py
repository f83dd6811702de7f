"""The selective scan as one fused CPU kernel (csrc/scan_cpu.cpp), built on first use.

Same contract, maths and gradients as the chunked PyTorch scan (scan_torch.py): the inputs are
saved, the state at the end of every `chunk` steps is kept, and the backward recomputes each
chunk's states from the previous one. What differs is the execution: every (batch, channel) row
runs its N states in registers, so each input is read once per pass instead of every
intermediate `[b,d,N]` tensor going through memory (measured: docs/RESULTS.md, "Selective scan").

Build: plain C++17 with no torch headers, compiled by the system C++ compiler (`$CXX`, else c++ /
g++) for this CPU (-march=native) in a few seconds, the first time the kernel is needed, into
`$PKS4_EXT_DIR` (default ~/.cache/pks4_lit/ext), keyed by a hash of the source, the flags, the
compiler and the CPU's feature flags, written atomically (safe with parallel processes). It is
called through ctypes, which releases the GIL; threads split the batch (`torch.get_num_threads()`).
No compiler, a failed build or PKS4_SCAN_CPU_KERNEL=0: `available()` says why, and the dispatcher
uses the PyTorch scan instead.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

SOURCE = Path(__file__).with_name("csrc") / "scan_cpu.cpp"
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-std=c++17", "-shared",
         "-fPIC", "-pthread"]
ABI_VERSION = 2
DEFAULT_CHUNK = 64            # states kept every 64 steps; a chunk's buffers (≤ 65·N values) stay in L1


class _Args(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_void_p) for n in ("u", "dt", "A", "B", "C", "D", "gate", "h0", "gout", "out",
                                               "last", "states", "du", "ddt", "dA", "dB", "dC", "dD",
                                               "dgate", "dh0")]
                + [(n, ctypes.c_int64) for n in ("b", "d", "L", "N", "GB", "GC", "chunk", "threads")])


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def _build(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(FLAGS), version, _cpu_flags(),
                                    platform.machine()]).encode()).hexdigest()[:16]
    out_dir = Path(os.environ.get("PKS4_EXT_DIR") or Path.home() / ".cache" / "pks4_lit" / "ext")
    lib = out_dir / f"scan_cpu-{key}.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        res = subprocess.run([cxx, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True,
                             timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"{cxx} failed: {res.stderr.strip()[-500:]}")
        os.replace(tmp, lib)                                     # atomic: parallel builds are safe
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


@functools.lru_cache(maxsize=None)
def _load():
    """(library, None) or (None, why the kernel is not available)."""
    if os.environ.get("PKS4_SCAN_CPU_KERNEL", "1").strip() in ("0", "false", "no", "off"):
        return None, "PKS4_SCAN_CPU_KERNEL=0"
    cxx = _compiler()
    if cxx is None:
        return None, "no C++ compiler found ($CXX, c++, g++, clang++)"
    try:
        lib = ctypes.CDLL(str(_build(cxx)))
        if lib.pks4_scan_abi_version() != ABI_VERSION:
            return None, "stale kernel library (ABI version mismatch)"
    except Exception as e:                                       # compiler error, OSError, timeout
        return None, f"the CPU scan kernel did not build ({type(e).__name__}: {e})"
    for name in ("pks4_scan_fwd_f32", "pks4_scan_fwd_f64", "pks4_scan_bwd_f32", "pks4_scan_bwd_f64"):
        getattr(lib, name).argtypes = [ctypes.POINTER(_Args)]
        getattr(lib, name).restype = None
    return lib, None


def available() -> tuple[bool, str | None]:
    lib, why = _load()
    return lib is not None, why


def _ptr(t: torch.Tensor | None):
    """The address of t's data; the caller keeps t alive (by name) until the kernel returns."""
    return None if t is None else t.data_ptr()


def _bc_layout(X: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Internal B/C (const [d,N] or time-major var [L,b,G,N]) → the kernel's const [d,N] or
    [b,G,L,N], and G (0 for const)."""
    if X.dim() == 2:
        return X.contiguous(), 0
    return X.permute(1, 2, 0, 3).contiguous(), X.shape[2]


def _args(shape, A, B, C, chunk, **ptrs) -> _Args:
    b, d, L = shape
    (Bk, GB), (Ck, GC) = B, C
    a = _Args(b=b, d=d, L=L, N=A.shape[1], GB=GB, GC=GC, chunk=chunk, threads=torch.get_num_threads())
    for name, t in ptrs.items():
        setattr(a, name, _ptr(t))
    a.A, a.B, a.C = A.data_ptr(), Bk.data_ptr(), Ck.data_ptr()
    return a


def _contig(t):
    return None if t is None else t.contiguous()


def _delta_and_gate(delta, z, delta_bias, softplus):
    """Δ [b,d,L] and silu(z), computed vectorised here rather than per step in the kernel."""
    dt = delta if delta_bias is None else delta + delta_bias[:, None]
    if softplus:
        dt = torch.nn.functional.softplus(dt)
    return dt.contiguous(), (None if z is None else torch.nn.functional.silu(z))


def _scan_forward(u, delta, A, B, C, D, z, delta_bias, softplus, h0, chunk, keep_states):
    lib = _load()[0]
    b, d, L = u.shape
    N = A.shape[1]
    dt, gate = _delta_and_gate(delta, z, delta_bias, softplus)
    out = torch.empty_like(u)
    last = u.new_empty(b, d, N)
    states = u.new_empty(b, d, -(-L // chunk), N) if keep_states else None
    a = _args(u.shape, A, B, C, chunk, u=u, dt=dt, D=D, gate=gate, h0=h0, out=out, last=last,
              states=states)
    (lib.pks4_scan_fwd_f64 if u.dtype == torch.float64 else lib.pks4_scan_fwd_f32)(ctypes.byref(a))
    return out, last, states


class SelectiveScanCPU(torch.autograd.Function):
    """Arguments as scan_torch.SelectiveScanChunked, already contiguous and in one dtype (fp32 or
    float64); B and C in the kernel's layout with their group counts (0: constant)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, GB, C, GC, D, z, delta_bias, softplus, h0, chunk):
        out, last, states = _scan_forward(u, delta, A, (B, GB), (C, GC), D, z, delta_bias, softplus,
                                          h0, chunk, keep_states=True)
        ctx.mark_non_differentiable(last)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, h0, states)
        ctx.meta = (GB, GC, softplus, chunk)
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, _g_last):
        u, delta, A, B, C, D, z, delta_bias, h0, states = ctx.saved_tensors
        GB, GC, softplus, chunk = ctx.meta
        need = ctx.needs_input_grad
        need_dt = need[1] or need[9]
        dt, gate = _delta_and_gate(delta, z, delta_bias, softplus)
        new = lambda t, flag, zero=False: (torch.zeros_like(t) if zero else torch.empty_like(t)) \
            if flag and t is not None else None                                     # noqa: E731
        g = dict(du=new(u, need[0]), ddt=new(u, need_dt), dA=new(A, need[2], True),
                 dB=new(B, need[3], True), dC=new(C, need[5], True), dD=new(D, need[7], True),
                 dgate=new(u, need[8] and z is not None), dh0=new(h0, need[11]))
        gout = gout.contiguous()                    # (kept in a name: the kernel reads its memory)
        a = _args(u.shape, A, (B, GB), (C, GC), chunk, u=u, dt=dt, D=D, gate=gate, h0=h0,
                  states=states, gout=gout, **g)
        lib = _load()[0]
        (lib.pks4_scan_bwd_f64 if u.dtype == torch.float64 else lib.pks4_scan_bwd_f32)(ctypes.byref(a))
        dz = ddelta = dbias = None
        if g["dgate"] is not None:                                   # silu'(z) = s(1 + z(1 - s))
            s = torch.sigmoid(z)
            dz = g["dgate"] * s * (1 + z * (1 - s))
        if need_dt:
            ddelta = g["ddt"]
            if softplus:                                             # F.softplus' threshold 20
                x = delta if delta_bias is None else delta + delta_bias[:, None]
                ddelta = ddelta * torch.where(x > 20, 1.0, torch.sigmoid(x))
            dbias = ddelta.sum((0, 2)) if need[9] else None
        return (g["du"], ddelta if need[1] else None, g["dA"], g["dB"], None, g["dC"], None, g["dD"], dz,
                dbias, None, g["dh0"], None)


def selective_scan_cpu_kernel(u, delta, A, B, C, D=None, z=None, delta_bias=None, softplus=False,
                              h0=None, chunk=None):
    """The kernel with B/C in scan_torch's internal forms (const [d,N] or var [L,b,G,N]); all
    tensors in one dtype (fp32 or float64). Returns out [b,d,L] and the last state [b,d,N]."""
    L = u.shape[-1]
    chunk = max(1, min(int(chunk or DEFAULT_CHUNK), L))
    (Bk, GB), (Ck, GC) = _bc_layout(B), _bc_layout(C)
    args = [_contig(t) for t in (u, delta, A)]
    rest = [_contig(t) for t in (D, z, delta_bias)]
    h0 = _contig(h0)
    tensors = (*args, Bk, Ck, *rest, h0)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return SelectiveScanCPU.apply(*args, Bk, GB, Ck, GC, *rest, softplus, h0, chunk)
    out, last, _ = _scan_forward(*args, (Bk, GB), (Ck, GC), *rest, softplus, h0, chunk, keep_states=False)
    return out, last
