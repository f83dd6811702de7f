// Selective scan on the CPU, fused: forward and backward of
//     Δ_t = softplus(delta_t + bias)   (bias and softplus optional)
//     h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t      out_t = (C_t · h_t + D u_t) · silu(z_t)
// for every (batch, channel) row independently. Same maths and gradients as
// pks4_lit/ops/scan_torch.py (read that file's docstring first). Per row, a vectorised pass over
// time gathers u, Δ and silu(z) (and, in the backward, softplus' and silu's derivatives) into
// row buffers; the N states of the row live in registers/L1. The forward keeps the state at the
// end of every `chunk` steps; the backward recomputes a chunk's states from the previous one and
// runs the adjoint backwards through it.
//
// Plain C ABI (called through ctypes, no torch headers: builds in seconds). Element strides are
// given per tensor, so callers pass transposed views without copying:
//   u, delta, z, out and their gradients: [b,d,L] with strides (batch, channel, time);
//   B/C variable [b,G,L,N] with strides (batch, group, time) and the N states contiguous, or
//   constant [d,N] contiguous (GB/GC = 0); dB/dC likewise with their own strides;
//   A [d,N], D, delta_bias [d], h0, last [b,d,N], states [b,d,n_chunks,N]: contiguous.
// Null pointers mean "absent" / "gradient not needed". ddelta is ∂loss/∂delta (before bias and
// softplus), dz = ∂loss/∂z.
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
struct Strides { int64_t b, d, t; };          // for B/C/dB/dC: (batch, group, time)
struct ScanArgs {
    const void *u, *delta, *A, *B, *C, *D, *z, *bias, *h0, *gout;
    void *out, *last, *states;
    void *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias, *dh0;
    int64_t b, d, L, N, GB, GC, chunk, threads, softplus;
    Strides s_u, s_delta, s_z, s_out, s_gout, s_du, s_ddelta, s_dz, s_B, s_C, s_dB, s_dC;
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

// log for finite x ≥ 1 (all softplus needs), vectorisable: x = m·2^e with m in [√½, √2),
// Cephes logf's polynomial in m − 1 (~1 ulp).
inline float log_ge1(float x) {
    const int32_t i = __builtin_bit_cast(int32_t, x);
    int32_t e = ((i >> 23) & 0xff) - 126;
    float m = __builtin_bit_cast(float, (i & 0x007fffff) | 0x3f000000);     // [0.5, 1)
    const bool small = m < 0.707106781186547524f;
    e = small ? e - 1 : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = std::fma(y, m, -1.1514610310e-1f);
    y = std::fma(y, m, 1.1676998740e-1f);
    y = std::fma(y, m, -1.2420140846e-1f);
    y = std::fma(y, m, 1.4249322787e-1f);
    y = std::fma(y, m, -1.6668057665e-1f);
    y = std::fma(y, m, 2.0000714765e-1f);
    y = std::fma(y, m, -2.4999993993e-1f);
    y = std::fma(y, m, 3.3333331174e-1f);
    y = y * m * z;
    const float fe = static_cast<float>(e);
    y = std::fma(fe, -2.12194440e-4f, y);
    y = std::fma(-0.5f, z, y);
    return std::fma(fe, 0.693359375f, m + y);
}
// log1p(e) for e ≥ 0: log(1 + e) corrected for the rounding of 1 + e (exact to ~1 ulp also for tiny e)
inline float log1p_v(float e) {
    const float w = 1.0f + e;
    const float l = log_ge1(w);
    return w == 1.0f ? e : l - ((w - 1.0f) - e) / w;
}
inline double log1p_v(double e) { return std::log1p(e); }

// Per-row pass over time: Δ (and dΔ/d delta), silu(z) (and its derivative) into row buffers.
template <typename T> struct RowBufs {
    std::vector<T> u, dt, gate, dsp, dsilu, go;
    explicit RowBufs(int64_t L) : u(L), dt(L), gate(L), dsp(L), dsilu(L), go(L) {}
};

template <typename T>
void load_row(const ScanArgs& a, int64_t bi, int64_t di, RowBufs<T>& rb, bool backward) {
    const int64_t L = a.L;
    const T* u = static_cast<const T*>(a.u) + bi * a.s_u.b + di * a.s_u.d;
    const T* dl = static_cast<const T*>(a.delta) + bi * a.s_delta.b + di * a.s_delta.d;
    const int64_t su = a.s_u.t, sd = a.s_delta.t;
    const T bias = a.bias ? static_cast<const T*>(a.bias)[di] : T(0);
    T *__restrict U = rb.u.data(), *__restrict DT = rb.dt.data(), *__restrict DSP = rb.dsp.data();
    if (a.softplus) {
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) {                    // F.softplus: threshold 20
            const T x = dl[t * sd] + bias;
            const T e = exp_v(x > T(20) ? T(20) : x);
            DT[t] = x > T(20) ? x : log1p_v(e);
            DSP[t] = x > T(20) ? T(1) : e / (T(1) + e);
            U[t] = u[t * su];
        }
    } else {
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) {
            DT[t] = dl[t * sd] + bias;
            DSP[t] = T(1);
            U[t] = u[t * su];
        }
    }
    if (a.z) {
        const T* z = static_cast<const T*>(a.z) + bi * a.s_z.b + di * a.s_z.d;
        const int64_t sz = a.s_z.t;
        T *__restrict G = rb.gate.data(), *__restrict DS = rb.dsilu.data();
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) {
            const T zt = z[t * sz];
            const T s = T(1) / (T(1) + exp_v(-zt));
            G[t] = zt * s;
            DS[t] = s * (T(1) + zt * (T(1) - s));
        }
    }
    if (backward) {
        const T* g = static_cast<const T*>(a.gout) + bi * a.s_gout.b + di * a.s_gout.d;
        const int64_t sg = a.s_gout.t;
        T* __restrict GO = rb.go.data();
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) GO[t] = g[t * sg];
    }
}

template <typename T> const T* bc_row(const void* p, int64_t G, const Strides& s, int64_t bi, int64_t di,
                                      int64_t d, int64_t N) {
    const T* base = static_cast<const T*>(p);
    return G ? base + bi * s.b + (di / (d / G)) * s.d : base + di * N;
}

// NC: N as a compile-time constant (0: read it at run time), so the loops over the N states
// unroll into a few full vector registers.
template <typename T, int NC> void forward_rows(const ScanArgs& a, int64_t r0, int64_t r1) {
    const int64_t L = a.L, N = NC ? NC : a.N, n_chunks = (L + a.chunk - 1) / a.chunk;
    std::vector<T> hbuf(N);
    RowBufs<T> rb(L);
    T* __restrict h = hbuf.data();
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / a.d, di = r % a.d;
        load_row(a, bi, di, rb, false);
        const T* __restrict A = static_cast<const T*>(a.A) + di * N;
        const T* Bp = bc_row<T>(a.B, a.GB, a.s_B, bi, di, a.d, N);
        const T* Cp = bc_row<T>(a.C, a.GC, a.s_C, bi, di, a.d, N);
        const int64_t sB = a.GB ? a.s_B.t : 0, sC = a.GC ? a.s_C.t : 0;
        const T D = a.D ? static_cast<const T*>(a.D)[di] : T(0);
        T* out = static_cast<T*>(a.out) + bi * a.s_out.b + di * a.s_out.d;
        const int64_t so = a.s_out.t;
        if (a.h0) std::copy_n(static_cast<const T*>(a.h0) + r * N, N, h);
        else std::fill_n(h, N, T(0));
        for (int64_t t = 0; t < L; ++t) {
            const T dt = rb.dt[t], ut = rb.u[t], dtu = dt * ut;
            const T *__restrict Bt = Bp + t * sB, *__restrict Ct = Cp + t * sC;
            T y = 0;
#pragma omp simd reduction(+ : y)
            for (int64_t n = 0; n < N; ++n) {
                const T hn = exp_v(dt * A[n]) * h[n] + dtu * Bt[n];
                h[n] = hn;
                y += hn * Ct[n];
            }
            y += D * ut;
            if (a.z) y *= rb.gate[t];
            out[t * so] = y;
            if (a.states && ((t + 1) % a.chunk == 0 || t == L - 1))
                std::copy_n(h, N, static_cast<T*>(a.states) + (r * n_chunks + t / a.chunk) * N);
        }
        if (a.last) std::copy_n(h, N, static_cast<T*>(a.last) + r * N);
    }
}

template <typename T> struct Acc {            // per-thread sums over the batch
    std::vector<T> dA, dD, dbias, dB, dC;     // [d,N], [d], [d], [d,N] (constant B/C only)
};

template <typename T, int NC>
void backward_rows(const ScanArgs& a, int64_t r0, int64_t r1, Acc<T>& acc) {
    const int64_t L = a.L, N = NC ? NC : a.N, K = a.chunk, n_chunks = (L + K - 1) / K;
    std::vector<T> Hbuf((K + 1) * N), Ebuf(K * N), carry(N), sink(N);
    RowBufs<T> rb(L);
    T *__restrict H = Hbuf.data(), *__restrict E = Ebuf.data(), *__restrict g_next = carry.data();
    const bool need_ddelta = a.ddelta || a.dbias;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / a.d, di = r % a.d;
        load_row(a, bi, di, rb, true);
        const T* __restrict A = static_cast<const T*>(a.A) + di * N;
        const T* Bp = bc_row<T>(a.B, a.GB, a.s_B, bi, di, a.d, N);
        const T* Cp = bc_row<T>(a.C, a.GC, a.s_C, bi, di, a.d, N);
        const int64_t sB = a.GB ? a.s_B.t : 0, sC = a.GC ? a.s_C.t : 0;
        const T D = a.D ? static_cast<const T*>(a.D)[di] : T(0);
        // gradients nobody asked for go to `sink` (keeps the inner loop free of branches)
        T* __restrict dAr = a.dA ? acc.dA.data() + di * N : sink.data();
        T* dB = !a.dB ? sink.data() : a.GB ? static_cast<T*>(a.dB) + bi * a.s_dB.b + (di / (a.d / a.GB)) * a.s_dB.d
                                            : acc.dB.data() + di * N;
        T* dC = !a.dC ? sink.data() : a.GC ? static_cast<T*>(a.dC) + bi * a.s_dC.b + (di / (a.d / a.GC)) * a.s_dC.d
                                            : acc.dC.data() + di * N;
        const int64_t sdB = a.dB && a.GB ? a.s_dB.t : 0, sdC = a.dC && a.GC ? a.s_dC.t : 0;
        T* du = a.du ? static_cast<T*>(a.du) + bi * a.s_du.b + di * a.s_du.d : nullptr;
        T* ddl = a.ddelta ? static_cast<T*>(a.ddelta) + bi * a.s_ddelta.b + di * a.s_ddelta.d : nullptr;
        T* dz = a.dz ? static_cast<T*>(a.dz) + bi * a.s_dz.b + di * a.s_dz.d : nullptr;
        T dD = 0, dbias = 0;
        std::fill_n(g_next, N, T(0));
        for (int64_t c = n_chunks - 1; c >= 0; --c) {
            const int64_t t0 = c * K, n_steps = std::min(K, L - t0);
            if (c > 0) std::copy_n(static_cast<const T*>(a.states) + (r * n_chunks + c - 1) * N, N, H);
            else if (a.h0) std::copy_n(static_cast<const T*>(a.h0) + r * N, N, H);
            else std::fill_n(H, N, T(0));
            for (int64_t i = 0; i < n_steps; ++i) {           // recompute the chunk's states
                const int64_t t = t0 + i;
                const T dt = rb.dt[t], dtu = dt * rb.u[t];
                const T* __restrict Bt = Bp + t * sB;
                const T* __restrict Hi = H + i * N;
                T *__restrict Ho = H + (i + 1) * N, *__restrict Ei = E + i * N;
#pragma omp simd
                for (int64_t n = 0; n < N; ++n) {
                    const T e = exp_v(dt * A[n]);
                    Ei[n] = e;
                    Ho[n] = e * Hi[n] + dtu * Bt[n];
                }
            }
            for (int64_t i = n_steps - 1; i >= 0; --i) {      // adjoint, backwards in time
                const int64_t t = t0 + i;
                const T dt = rb.dt[t], ut = rb.u[t], go = rb.go[t];
                const T *__restrict Bt = Bp + t * sB, *__restrict Ct = Cp + t * sC,
                        *__restrict Hprev = H + i * N, *__restrict Hcur = H + (i + 1) * N,
                        *__restrict Ei = E + i * N;
                T gy = go;                                     // ∂loss/∂(C·h + D u)
                if (a.z) {
                    gy = go * rb.gate[t];
                    if (dz) {
                        T y = 0;
#pragma omp simd reduction(+ : y)
                        for (int64_t n = 0; n < N; ++n) y += Hcur[n] * Ct[n];
                        dz[t * a.s_dz.t] = go * (y + D * ut) * rb.dsilu[t];
                    }
                }
                dD += gy * ut;
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
                if (du) du[t * a.s_du.t] = gB * dt + gy * D;
                if (need_ddelta) {
                    const T g = (gB * ut + pA) * rb.dsp[t];
                    if (ddl) ddl[t * a.s_ddelta.t] = g;
                    dbias += g;
                }
            }
        }
        if (a.dD) acc.dD[di] += dD;
        if (a.dbias) acc.dbias[di] += dbias;
        if (a.dh0) std::copy_n(g_next, N, static_cast<T*>(a.dh0) + r * N);
    }
}

// Run fn(row0, row1, thread) on whole batch items (of d rows each) spread over `threads` threads.
template <typename F> void split_rows(int64_t b, int64_t d, int64_t threads, F fn) {
    const int64_t n_threads = std::max<int64_t>(1, std::min(threads, b));
    if (n_threads == 1) { fn(0, b * d, 0); return; }
    std::vector<std::thread> pool;
    for (int64_t k = 0; k < n_threads; ++k) {
        const int64_t b0 = b * k / n_threads, b1 = b * (k + 1) / n_threads;
        pool.emplace_back(fn, b0 * d, b1 * d, k);
    }
    for (auto& th : pool) th.join();
}
template <typename F> void split_batch(const ScanArgs& a, F fn) { split_rows(a.b, a.d, a.threads, fn); }

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
        if (a.dbias) acc.dbias.assign(a.d, T(0));
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
    sum_into(a.dbias, &Acc<T>::dbias, a.d);
    if (!a.GB) sum_into(a.dB, &Acc<T>::dB, dN);
    if (!a.GC) sum_into(a.dC, &Acc<T>::dC, dN);
}

}  // namespace

// ---- depthwise causal conv1d (+ SiLU), forward and backward, for the training path ------------
//     pre[b,c,t] = bias[c] + Σ_{j<k} w[c,j] · x[b,c,t-k+1+j]   (x before t = 0 is 0)
//     out = silu(pre) or pre
// x, out, gout, dx: [b,d,L] with strides; w [d,k], bias [d] contiguous. The backward recomputes
// pre from x (nothing but x is kept) and sums dw, dbias per thread in thread order.
extern "C" {
struct ConvArgs {
    const void *x, *w, *bias, *gout;
    void *out, *dx, *dw, *dbias;
    int64_t b, d, L, k, silu, threads;
    Strides s_x, s_out, s_gout, s_dx;
};
}

namespace {

template <typename T>
void conv_pre(const ConvArgs& a, int64_t bi, int64_t di, T* __restrict xb, T* __restrict pre) {
    const int64_t L = a.L, k = a.k;
    const T* x = static_cast<const T*>(a.x) + bi * a.s_x.b + di * a.s_x.d;
    const T* __restrict w = static_cast<const T*>(a.w) + di * k;
    const T bias = a.bias ? static_cast<const T*>(a.bias)[di] : T(0);
    std::fill_n(xb, k - 1, T(0));
    for (int64_t t = 0; t < L; ++t) xb[k - 1 + t] = x[t * a.s_x.t];
#pragma omp simd
    for (int64_t t = 0; t < L; ++t) pre[t] = bias;
    for (int64_t j = 0; j < k; ++j) {
        const T wj = w[j];
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) pre[t] += wj * xb[t + j];
    }
}

template <typename T> void conv_forward(const ConvArgs& a) {
    split_rows(a.b, a.d, a.threads, [&](int64_t r0, int64_t r1, int64_t) {
        std::vector<T> xb(a.L + a.k - 1), pre(a.L);
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t bi = r / a.d, di = r % a.d;
            conv_pre(a, bi, di, xb.data(), pre.data());
            T* out = static_cast<T*>(a.out) + bi * a.s_out.b + di * a.s_out.d;
            const T* __restrict P = pre.data();
            if (a.silu) {
#pragma omp simd
                for (int64_t t = 0; t < a.L; ++t) pre[t] = P[t] / (T(1) + exp_v(-P[t]));
            }
            for (int64_t t = 0; t < a.L; ++t) out[t * a.s_out.t] = pre[t];
        }
    });
}

template <typename T> void conv_backward(const ConvArgs& a) {
    const int64_t n_threads = std::max<int64_t>(1, std::min(a.threads, a.b)), L = a.L, k = a.k;
    std::vector<std::vector<T>> dws(n_threads, std::vector<T>(a.d * k, T(0))), dbs(n_threads, std::vector<T>(a.d, T(0)));
    split_rows(a.b, a.d, a.threads, [&](int64_t r0, int64_t r1, int64_t th) {
        std::vector<T> xb(L + k - 1), pre(L), gb(L + k - 1), dxb(L);
        T *__restrict P = pre.data(), *__restrict G = gb.data(), *__restrict X = xb.data(),
          *__restrict DX = dxb.data();
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t bi = r / a.d, di = r % a.d;
            conv_pre(a, bi, di, X, P);
            const T* go = static_cast<const T*>(a.gout) + bi * a.s_gout.b + di * a.s_gout.d;
            for (int64_t t = 0; t < L; ++t) G[t] = go[t * a.s_gout.t];
            std::fill_n(G + L, k - 1, T(0));
            if (a.silu) {
#pragma omp simd
                for (int64_t t = 0; t < L; ++t) {
                    const T s = T(1) / (T(1) + exp_v(-P[t]));
                    G[t] *= s * (T(1) + P[t] * (T(1) - s));
                }
            }
            T db = 0;
#pragma omp simd reduction(+ : db)
            for (int64_t t = 0; t < L; ++t) db += G[t];
            dbs[th][di] += db;
            const T* __restrict w = static_cast<const T*>(a.w) + di * k;
            for (int64_t j = 0; j < k; ++j) {
                T acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int64_t t = 0; t < L; ++t) acc += G[t] * X[t + j];
                dws[th][di * k + j] += acc;
            }
            if (a.dx) {                                    // dx[s] = Σ_j w[j] · g[s + k-1-j]
                T* dx = static_cast<T*>(a.dx) + bi * a.s_dx.b + di * a.s_dx.d;
                std::fill_n(DX, L, T(0));
                for (int64_t j = 0; j < k; ++j) {
                    const T wj = w[j];
                    const T* __restrict Gj = G + k - 1 - j;
#pragma omp simd
                    for (int64_t t = 0; t < L; ++t) DX[t] += wj * Gj[t];
                }
                for (int64_t t = 0; t < L; ++t) dx[t * a.s_dx.t] = DX[t];
            }
        }
    });
    for (int64_t th = 0; th < n_threads; ++th) {
        if (a.dw) for (int64_t i = 0; i < a.d * k; ++i) static_cast<T*>(a.dw)[i] += dws[th][i];
        if (a.dbias) for (int64_t i = 0; i < a.d; ++i) static_cast<T*>(a.dbias)[i] += dbs[th][i];
    }
}

}  // namespace

extern "C" {
int pks4_scan_abi_version() { return 4; }
void pks4_scan_fwd_f32(const ScanArgs* a) { forward<float>(*a); }
void pks4_scan_fwd_f64(const ScanArgs* a) { forward<double>(*a); }
void pks4_scan_bwd_f32(const ScanArgs* a) { backward<float>(*a); }
void pks4_scan_bwd_f64(const ScanArgs* a) { backward<double>(*a); }
void pks4_conv_fwd_f32(const ConvArgs* a) { conv_forward<float>(*a); }
void pks4_conv_fwd_f64(const ConvArgs* a) { conv_forward<double>(*a); }
void pks4_conv_bwd_f32(const ConvArgs* a) { conv_backward<float>(*a); }
void pks4_conv_bwd_f64(const ConvArgs* a) { conv_backward<double>(*a); }
}
