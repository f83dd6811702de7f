// Selective scan on the CPU, fused: forward and backward of
//     h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t      out_t = (C_t · h_t + D u_t) · gate_t
// for every (batch, channel) row independently. The caller passes Δ (bias and softplus already
// applied) and gate = silu(z), computed vectorised in PyTorch, and chains their gradients. The N states of a row live in registers/L1;
// the forward keeps the state at the end of every `chunk` steps, the backward recomputes a
// chunk's states from the previous one and runs the adjoint backwards through it. Same maths
// and gradients as pks4_lit/ops/scan_torch.py (read that file's docstring first).
//
// Plain C ABI (called through ctypes, no torch headers: builds in seconds). Layouts, all
// contiguous: u, dt, gate, out and their gradients [b,d,L]; A [d,N]; B/C variable [b,G,L,N]
// (G = GB/GC groups) or constant [d,N] (GB/GC = 0); D [d]; h0, last [b,d,N]; states
// [b,d,n_chunks,N]. Null pointers mean "absent" / "gradient not needed". The backward returns
// dgate = ∂loss/∂gate and ddt = ∂loss/∂Δ.
// Threads split the batch (each thread owns whole batch items, so variable dB/dC have one
// writer); gradients summed over the batch (dA, dD, d delta_bias, constant dB/dC) are
// accumulated per thread and added up in thread order at the end (deterministic).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

extern "C" {
struct ScanArgs {
    const void *u, *dt, *A, *B, *C, *D, *gate, *h0, *gout;
    void *out, *last, *states;
    void *du, *ddt, *dA, *dB, *dC, *dD, *dgate, *dh0;
    int64_t b, d, L, N, GB, GC, chunk, threads;
};
}

namespace {

// exp that the compiler vectorises (no libm call in the loop): Cody-Waite reduction to
// r in [-ln2/2, ln2/2], degree-6 polynomial (Cephes expf, ~1 ulp), scale by 2^k built from two
// normal halves (k up to 128 stays finite). 0 below -87.34 (no denormals: they are slow and
// exp(ΔA) that small contributes nothing), inf above the float range, NaN passes through.
inline float pow2i(int32_t k) { return __builtin_bit_cast(float, (k + 127) << 23); }

inline float exp_v(float x) {
    float xc = x < -87.33654f ? -87.33654f : x;                  // (not fmin/fmax: libm calls)
    xc = xc > 88.72284f ? 88.72284f : xc;
    const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = std::fma(k, -0.693359375f, xc);
    r = std::fma(k, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = std::fma(p, r, 1.3981999507e-3f);
    p = std::fma(p, r, 8.3334519073e-3f);
    p = std::fma(p, r, 4.1665795894e-2f);
    p = std::fma(p, r, 1.6666665459e-1f);
    p = std::fma(p, r, 5.0000001201e-1f);
    p = std::fma(p, r * r, r) + 1.0f;
    const int32_t ki = static_cast<int32_t>(k), k1 = ki >> 1;
    float e = p * pow2i(k1) * pow2i(ki - k1);
    e = x < -87.33654f ? 0.0f : e;
    e = x > 88.72284f ? INFINITY : e;
    return x != x ? x : e;
}
inline double exp_v(double x) { return std::exp(x); }

template <typename T> struct Row {            // pointers of one (batch, channel) row
    const T *u, *dt, *gate, *A, *B, *C, *gout;
    int64_t sB, sC;                            // step between time steps in B/C (0: constant)
    T D;
};

template <typename T> Row<T> row(const ScanArgs& a, int64_t r) {
    const int64_t bi = r / a.d, di = r % a.d, L = a.L, N = a.N;
    Row<T> w;
    w.u = static_cast<const T*>(a.u) + r * L;
    w.dt = static_cast<const T*>(a.dt) + r * L;
    w.gate = a.gate ? static_cast<const T*>(a.gate) + r * L : nullptr;
    w.gout = a.gout ? static_cast<const T*>(a.gout) + r * L : nullptr;
    w.A = static_cast<const T*>(a.A) + di * N;
    w.B = static_cast<const T*>(a.B) + (a.GB ? (bi * a.GB + di / (a.d / a.GB)) * L * N : di * N);
    w.C = static_cast<const T*>(a.C) + (a.GC ? (bi * a.GC + di / (a.d / a.GC)) * L * N : di * N);
    w.sB = a.GB ? N : 0;
    w.sC = a.GC ? N : 0;
    w.D = a.D ? static_cast<const T*>(a.D)[di] : T(0);
    return w;
}

// NC: N as a compile-time constant (0: read it at run time), so the loops over the N states
// unroll into a few full vector registers.
template <typename T, int NC> void forward_rows(const ScanArgs& a, int64_t r0, int64_t r1) {
    const int64_t L = a.L, N = NC ? NC : a.N, n_chunks = (L + a.chunk - 1) / a.chunk;
    std::vector<T> hbuf(N);
    T* __restrict h = hbuf.data();
    for (int64_t r = r0; r < r1; ++r) {
        const Row<T> w = row<T>(a, r);
        const T* __restrict A = w.A;
        T* out = static_cast<T*>(a.out) + r * L;
        if (a.h0) std::copy_n(static_cast<const T*>(a.h0) + r * N, N, h);
        else std::fill_n(h, N, T(0));
        for (int64_t t = 0; t < L; ++t) {
            const T dt = w.dt[t], dtu = dt * w.u[t];
            const T *__restrict Bt = w.B + t * w.sB, *__restrict Ct = w.C + t * w.sC;
            T y = 0;
#pragma omp simd reduction(+ : y)
            for (int64_t n = 0; n < N; ++n) {
                const T hn = exp_v(dt * A[n]) * h[n] + dtu * Bt[n];
                h[n] = hn;
                y += hn * Ct[n];
            }
            y += w.D * w.u[t];
            if (w.gate) y *= w.gate[t];
            out[t] = y;
            if (a.states && ((t + 1) % a.chunk == 0 || t == L - 1))
                std::copy_n(h, N, static_cast<T*>(a.states) + (r * n_chunks + t / a.chunk) * N);
        }
        if (a.last) std::copy_n(h, N, static_cast<T*>(a.last) + r * N);
    }
}

template <typename T> struct Acc {            // per-thread sums over the batch
    std::vector<T> dA, dD, dB, dC;            // [d,N], [d], [d,N] (constant B/C only)
};

template <typename T, int NC>
void backward_rows(const ScanArgs& a, int64_t r0, int64_t r1, Acc<T>& acc) {
    const int64_t L = a.L, N = NC ? NC : a.N, K = a.chunk, n_chunks = (L + K - 1) / K;
    std::vector<T> Hbuf((K + 1) * N), Ebuf(K * N), dts(K), carry(N), sink(N);
    T *__restrict H = Hbuf.data(), *__restrict E = Ebuf.data(), *__restrict g_next = carry.data();
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / a.d, di = r % a.d;
        const Row<T> w = row<T>(a, r);
        const T* __restrict A = w.A;
        // gradients nobody asked for go to `sink` (keeps the inner loop free of branches)
        T* __restrict dAr = a.dA ? acc.dA.data() + di * N : sink.data();
        T* dB = !a.dB ? sink.data() : a.GB ? static_cast<T*>(a.dB) + (bi * a.GB + di / (a.d / a.GB)) * L * N
                                            : acc.dB.data() + di * N;
        T* dC = !a.dC ? sink.data() : a.GC ? static_cast<T*>(a.dC) + (bi * a.GC + di / (a.d / a.GC)) * L * N
                                            : acc.dC.data() + di * N;
        const int64_t sdB = a.dB ? w.sB : 0, sdC = a.dC ? w.sC : 0;
        std::fill_n(g_next, N, T(0));
        for (int64_t c = n_chunks - 1; c >= 0; --c) {
            const int64_t t0 = c * K, n_steps = std::min(K, L - t0);
            if (c > 0) std::copy_n(static_cast<const T*>(a.states) + (r * n_chunks + c - 1) * N, N, H);
            else if (a.h0) std::copy_n(static_cast<const T*>(a.h0) + r * N, N, H);
            else std::fill_n(H, N, T(0));
            for (int64_t i = 0; i < n_steps; ++i) {           // recompute the chunk's states
                const int64_t t = t0 + i;
                const T dt = w.dt[t], dtu = dt * w.u[t];
                const T* __restrict Bt = w.B + t * w.sB;
                const T* __restrict Hi = H + i * N;
                T *__restrict Ho = H + (i + 1) * N, *__restrict Ei = E + i * N;
                dts[i] = dt;
#pragma omp simd
                for (int64_t n = 0; n < N; ++n) {
                    const T e = exp_v(dt * A[n]);
                    Ei[n] = e;
                    Ho[n] = e * Hi[n] + dtu * Bt[n];
                }
            }
            for (int64_t i = n_steps - 1; i >= 0; --i) {      // adjoint, backwards in time
                const int64_t t = t0 + i;
                const T dt = dts[i], ut = w.u[t], go = w.gout[t];
                const T *__restrict Bt = w.B + t * w.sB, *__restrict Ct = w.C + t * w.sC,
                        *__restrict Hprev = H + i * N, *__restrict Hcur = H + (i + 1) * N,
                        *__restrict Ei = E + i * N;
                T gy = go;                                     // ∂loss/∂(C·h + D u)
                if (w.gate) {
                    gy = go * w.gate[t];
                    if (a.dgate) {
                        T y = 0;
#pragma omp simd reduction(+ : y)
                        for (int64_t n = 0; n < N; ++n) y += Hcur[n] * Ct[n];
                        static_cast<T*>(a.dgate)[r * L + t] = go * (y + w.D * ut);
                    }
                }
                if (a.dD) acc.dD[di] += gy * ut;
                T *__restrict dBt = dB + t * sdB, *__restrict dCt = dC + t * sdC;
                const T dtu = dt * ut;
                T gB = 0, pA = 0;
#pragma omp simd reduction(+ : gB, pA)
                for (int64_t n = 0; n < N; ++n) {
                    const T g = g_next[n] + gy * Ct[n];
                    const T P = Ei[n] * g * Hprev[n];
                    gB += g * Bt[n];
                    pA += P * A[n];
                    dCt[n] += Hcur[n] * gy;
                    dBt[n] += g * dtu;
                    dAr[n] += P * dt;
                    g_next[n] = Ei[n] * g;
                }
                if (a.du) static_cast<T*>(a.du)[r * L + t] = gB * dt + gy * w.D;
                if (a.ddt) static_cast<T*>(a.ddt)[r * L + t] = gB * ut + pA;
            }
        }
        if (a.dh0) std::copy_n(g_next, N, static_cast<T*>(a.dh0) + r * N);
    }
}

// Run fn(row0, row1, thread) on whole batch items spread over a.threads threads.
template <typename F> void split_batch(const ScanArgs& a, F fn) {
    const int64_t n_threads = std::max<int64_t>(1, std::min(a.threads, a.b));
    if (n_threads == 1) { fn(0, a.b * a.d, 0); return; }
    std::vector<std::thread> pool;
    for (int64_t k = 0; k < n_threads; ++k) {
        const int64_t b0 = a.b * k / n_threads, b1 = a.b * (k + 1) / n_threads;
        pool.emplace_back(fn, b0 * a.d, b1 * a.d, k);
    }
    for (auto& th : pool) th.join();
}

// Call fn.template operator()<NC>() with N as a constant for the common state sizes.
template <typename F> void with_n(int64_t N, F fn) {
    switch (N) {
        case 4: fn(std::integral_constant<int, 4>()); break;
        case 8: fn(std::integral_constant<int, 8>()); break;
        case 16: fn(std::integral_constant<int, 16>()); break;
        case 32: fn(std::integral_constant<int, 32>()); break;
        case 64: fn(std::integral_constant<int, 64>()); break;
        default: fn(std::integral_constant<int, 0>());
    }
}

template <typename T> void forward(const ScanArgs& a) {
    with_n(a.N, [&](auto nc) {
        split_batch(a, [&](int64_t r0, int64_t r1, int64_t) { forward_rows<T, nc.value>(a, r0, r1); });
    });
}

template <typename T> void backward(const ScanArgs& a) {
    const int64_t n_threads = std::max<int64_t>(1, std::min(a.threads, a.b)), dN = a.d * a.N;
    std::vector<Acc<T>> accs(n_threads);
    for (auto& acc : accs) {
        if (a.dA) acc.dA.assign(dN, T(0));
        if (a.dD) acc.dD.assign(a.d, T(0));
        if (a.dB && !a.GB) acc.dB.assign(dN, T(0));
        if (a.dC && !a.GC) acc.dC.assign(dN, T(0));
    }
    with_n(a.N, [&](auto nc) {
        split_batch(a, [&](int64_t r0, int64_t r1, int64_t k) { backward_rows<T, nc.value>(a, r0, r1, accs[k]); });
    });
    auto sum_into = [&](void* out, std::vector<T> Acc<T>::*field, int64_t n) {
        if (!out) return;
        T* o = static_cast<T*>(out);
        for (const auto& acc : accs)
            for (int64_t i = 0; i < n; ++i) o[i] += (acc.*field)[i];
    };
    sum_into(a.dA, &Acc<T>::dA, dN);
    sum_into(a.dD, &Acc<T>::dD, a.d);
    if (!a.GB) sum_into(a.dB, &Acc<T>::dB, dN);
    if (!a.GC) sum_into(a.dC, &Acc<T>::dC, dN);
}

}  // namespace

extern "C" {
int pks4_scan_abi_version() { return 2; }
void pks4_scan_fwd_f32(const ScanArgs* a) { forward<float>(*a); }
void pks4_scan_fwd_f64(const ScanArgs* a) { forward<double>(*a); }
void pks4_scan_bwd_f32(const ScanArgs* a) { backward<float>(*a); }
void pks4_scan_bwd_f64(const ScanArgs* a) { backward<double>(*a); }
}
