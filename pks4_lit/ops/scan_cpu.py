"""The selective scan as one fused CPU kernel (csrc/scan_cpu.cpp), built on first use.

Same contract, maths and gradients as the chunked PyTorch scan (scan_torch.py): the inputs are
saved, the state at the end of every `chunk` steps is kept, and the backward recomputes each
chunk's states from the previous one. What differs is the execution: every (batch, channel) row
runs its N states in registers, so each input is read once per pass instead of every
intermediate `[b,d,N]` tensor going through memory (measured: docs/RESULTS.md, "Selective scan").
Δ's bias and softplus and the silu(z) gate are applied inside the kernel (their gradients come
out of it too), and every `[b,d,L]` tensor and B/C are read and written through their strides: a
caller can pass transposed views of `[b,L,·]` projections without copies (B/C need their N states
contiguous, else they are copied once); y is laid out as delta (docs/RESULTS.md, "CPU scan and
head: issue 14 targets"). The same library holds the causal conv of conv_cpu.py.

Build: plain C++17 with no torch headers, compiled by the system C++ compiler (`$CXX`, else c++ /
g++) for this CPU (-march=native) in about 10 s, by one process at a time (a file lock), the first
time the kernel is needed, into `$PKS4_EXT_DIR` (default ~/.cache/pks4_lit/ext), keyed by a hash of the source, the flags, the
compiler and the CPU's feature flags, written atomically (safe with parallel processes). It is
called through ctypes, which releases the GIL; threads split the batch (`torch.get_num_threads()`).
No compiler, a failed build or PKS4_SCAN_CPU_KERNEL=0: `available()` says why, and the dispatcher
uses the PyTorch scan instead.
"""
from __future__ import annotations

import ctypes
import fcntl
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

from pks4_lit.ops.first_order import first_order_only

SOURCE = Path(__file__).with_name("csrc") / "scan_cpu.cpp"
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-std=c++17", "-shared",
         "-fPIC", "-pthread"]
ABI_VERSION = 4
DEFAULT_CHUNK = 64            # states kept every 64 steps; a chunk's buffers (≤ 65·N values) stay in L1


class _Strides(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in ("b", "d", "t")]


_STRIDED = ("u", "delta", "z", "out", "gout", "du", "ddelta", "dz", "B", "C", "dB", "dC")


class _Args(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_void_p) for n in ("u", "delta", "A", "B", "C", "D", "z", "bias", "h0", "gout",
                                               "out", "last", "states", "du", "ddelta", "dA", "dB", "dC",
                                               "dD", "dz", "dbias", "dh0")]
                + [(n, ctypes.c_int64) for n in ("b", "d", "L", "N", "GB", "GC", "chunk", "threads", "softplus")]
                + [("s_" + n, _Strides) for n in _STRIDED])


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
    with open(out_dir / f".scan_cpu-{key}.lock", "w") as lock:   # DDP ranks / test processes: one compiles
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.exists():                                         # another process built it meanwhile
            return lib
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        try:
            res = subprocess.run([cxx, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True,
                                 timeout=300)
            if res.returncode != 0:
                raise RuntimeError(f"{cxx} failed: {res.stderr.strip()[-500:]}")
            os.chmod(tmp, 0o755)                                 # mkstemp's 0600 would hide it from other users
            os.replace(tmp, lib)                                 # atomic
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
        for name in ("pks4_scan_fwd_f32", "pks4_scan_fwd_f64", "pks4_scan_bwd_f32", "pks4_scan_bwd_f64"):
            getattr(lib, name).argtypes = [ctypes.POINTER(_Args)]
            getattr(lib, name).restype = None
        for name in ("pks4_conv_fwd_f32", "pks4_conv_fwd_f64", "pks4_conv_bwd_f32", "pks4_conv_bwd_f64"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]                 # ConvArgs (conv_cpu.py)
            getattr(lib, name).restype = None
    except Exception as e:                                       # compiler error, OSError, timeout, missing symbol
        return None, f"the CPU scan kernel did not build ({type(e).__name__}: {e})"
    return lib, None


def available() -> tuple[bool, str | None]:
    lib, why = _load()
    return lib is not None, why


def _kernel_bc(X: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Public B/C (const [d,N], var [b,N,L] or [b,G,N,L], any strides) → the kernel's const [d,N]
    (contiguous) or var [b,G,L,N] with the N states contiguous (a view when they already are, e.g.
    a transposed slice of a [b,L,·] projection), and G (0 for const)."""
    if X.dim() == 2:
        return X.contiguous(), 0
    Xk = (X.unsqueeze(1) if X.dim() == 3 else X).transpose(-1, -2)               # [b,G,L,N]
    return (Xk if Xk.stride(-1) == 1 else Xk.contiguous()), Xk.shape[1]


def _dense(t: torch.Tensor) -> bool:
    """t covers its memory exactly (a permutation of a contiguous layout): empty_like keeps it."""
    expected = 1
    for i in sorted(range(t.dim()), key=t.stride):
        if t.shape[i] != 1 and t.stride(i) != expected:
            return False
        expected *= t.shape[i]
    return True


def _grad_like(t: torch.Tensor, *refs: torch.Tensor | None) -> torch.Tensor:
    """An empty gradient for t [b,d,L], laid out as the first dense tensor of (t, *refs)."""
    for r in (t, *refs):
        if r is not None and _dense(r):
            return torch.empty_like(r)
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def _args(u, A, B, C, chunk, softplus, **tensors) -> _Args:
    b, d, L = u.shape
    (Bk, GB), (Ck, GC) = B, C
    a = _Args(b=b, d=d, L=L, N=A.shape[1], GB=GB, GC=GC, chunk=chunk, threads=torch.get_num_threads(),
              softplus=int(bool(softplus)))
    tensors.update(u=u, A=A, B=Bk, C=Ck)
    for name, t in tensors.items():
        if t is None:
            continue
        setattr(a, name, t.data_ptr())
        if name in _STRIDED:
            setattr(a, "s_" + name, _Strides(*t.stride()[:3]))     # [b,d,L] or [b,G,L,N]
    return a


def _scan_forward(u, delta, A, B, C, D, z, delta_bias, softplus, h0, chunk, keep_states):
    """B, C in the kernel's forms (_kernel_bc). → out [b,d,L] (laid out as delta when dense),
    last state [b,d,N], chunk-boundary states [b,d,n_chunks,N] or None."""
    lib = _load()[0]
    b, d, L = u.shape
    N = A.shape[1]
    out = _grad_like(delta, u)
    last = u.new_empty(b, d, N)
    states = u.new_empty(b, d, -(-L // chunk), N) if keep_states else None
    a = _args(u, A, B, C, chunk, softplus, delta=delta, D=D, z=z, bias=delta_bias, h0=h0, out=out,
              last=last, states=states)
    (lib.pks4_scan_fwd_f64 if u.dtype == torch.float64 else lib.pks4_scan_fwd_f32)(ctypes.byref(a))
    return out, last, states


class SelectiveScanCPU(torch.autograd.Function):
    """Arguments as scan_torch.SelectiveScanChunked but B/C in their public forms, u/delta/z
    [b,d,L] with any strides, all in one dtype (fp32 or float64). Nothing is copied or saved
    beyond the inputs and the chunk-boundary states (B/C whose N states are not contiguous are
    copied once, transposed)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, h0, chunk):
        Bk, Ck = _kernel_bc(B), _kernel_bc(C)
        out, last, states = _scan_forward(u, delta, A, Bk, Ck, D, z, delta_bias, softplus, h0, chunk,
                                          keep_states=True)
        ctx.mark_non_differentiable(last)
        ctx.save_for_backward(u, delta, A, Bk[0], Ck[0], D, z, delta_bias, h0, states)
        ctx.meta = (Bk[1], Ck[1], B.dim(), C.dim(), softplus, chunk)
        return out, last

    @staticmethod
    @first_order_only
    @once_differentiable
    def backward(ctx, gout, _g_last):
        u, delta, A, Bk, Ck, D, z, delta_bias, h0, states = ctx.saved_tensors
        GB, GC, dimB, dimC, softplus, chunk = ctx.meta
        need = ctx.needs_input_grad
        zeros = lambda t, flag: torch.zeros_like(t) if flag and t is not None else None  # noqa: E731
        g = dict(du=_grad_like(u, gout) if need[0] else None,
                 ddelta=_grad_like(delta, gout) if need[1] else None,
                 dz=_grad_like(z, gout) if need[6] and z is not None else None,
                 dh0=torch.empty_like(h0) if need[9] and h0 is not None else None,
                 dA=zeros(A, need[2]), dD=zeros(D, need[5]), dbias=zeros(delta_bias, need[7]),
                 dB=Bk.new_zeros(Bk.shape) if need[3] else None,
                 dC=Ck.new_zeros(Ck.shape) if need[4] else None)
        a = _args(u, A, (Bk, GB), (Ck, GC), chunk, softplus, delta=delta, D=D, z=z, bias=delta_bias,
                  h0=h0, states=states, gout=gout, **g)
        lib = _load()[0]
        (lib.pks4_scan_bwd_f64 if u.dtype == torch.float64 else lib.pks4_scan_bwd_f32)(ctypes.byref(a))

        def public(dX, G, dim):                      # kernel form → the input's public shape
            if dX is None or not G:
                return dX
            dX = dX.transpose(-1, -2)                                             # [b,G,N,L]
            return dX.squeeze(1) if dim == 3 else dX

        return (g["du"], g["ddelta"], g["dA"], public(g["dB"], GB, dimB), public(g["dC"], GC, dimC),
                g["dD"], g["dz"], g["dbias"], None, g["dh0"], None)


def selective_scan_cpu_kernel(u, delta, A, B, C, D=None, z=None, delta_bias=None, softplus=False,
                              h0=None, chunk=None):
    """The kernel on mamba's public forms (B/C const [d,N], var [b,N,L] or [b,G,N,L]; u, delta,
    z [b,d,L]; any strides), all tensors in one dtype (fp32 or float64). Returns out [b,d,L] and
    the last state [b,d,N]."""
    L = u.shape[-1]
    chunk = max(1, min(int(chunk or DEFAULT_CHUNK), L))
    A = A.contiguous()
    D, delta_bias, h0 = (None if t is None else t.contiguous() for t in (D, delta_bias, h0))
    tensors = (u, delta, A, B, C, D, z, delta_bias, h0)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return SelectiveScanCPU.apply(u, delta, A, B, C, D, z, delta_bias, softplus, h0, chunk)
    out, last, _ = _scan_forward(u, delta, A, _kernel_bc(B), _kernel_bc(C), D, z, delta_bias, softplus,
                                 h0, chunk, keep_states=False)
    return out, last
