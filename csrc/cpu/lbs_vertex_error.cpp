// CPU kernel for lbs_vertex_error (romp_fast/ops/lbs_vertex_error.py): per sample, the mean vertex
// distance between two linear-blend-skinned meshes, without materialising either mesh or the
// per-vertex transforms. Samples go L at a time (one 64-byte vector of lanes: 16 floats or 8
// doubles) and every vertex's transform is summed over its non-zero skinning weights only (SMPL:
// 1 to 4 of 24 joints), so a vertex costs 2 x (12 nnz + 12) multiply-adds per sample, vectorised
// across samples, and each input is read once. The dense alternative (W A as a [V, 24] x [24, 12 B]
// GEMM, then the transform pass) does 2-6x the flops and writes and reads 12 values per vertex and
// sample: on the 3DPW protocol (35k pairs of SMPL meshes, 2 Zen 5 cores) this kernel takes ~0.3 s
// where the torch version of the same (romp_fast.ops.lbs_vertex_error.linear_blend_skinning plus the
// distance) took ~1.8 s. Vertices are visited in runs of equal non-zero count, so the inner loops
// have compile-time trip counts (no mispredicted loop exits), with the rows prefetched explicitly.
// Work items are (sample block, vertex tile); each writes its partial sums, reduced in a fixed
// order afterwards, so results do not depend on the thread count. Distances are summed in double.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../checks.h"
#include "../lbs_common.h"

#if defined(__GNUC__) && !defined(__clang__)
#define RF_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RF_ALWAYS_INLINE inline
#endif

namespace romp_fast {
namespace {

constexpr int64_t kTile = 1024;  // vertices per work item: ~16k vertex-samples, tens of microseconds
constexpr int64_t kAhead = 8;    // positions prefetched ahead

using lbs::Mesh;
using lbs::mesh;

struct Run {  // positions [begin, end) of the vertex order whose vertices have k non-zero weights
  int64_t begin, end;
  int k;
};

template <typename T>
struct Job {
  Mesh<T> p, g;
  const int32_t* vertex;  // vertices sorted by their number of non-zero weights (stable)
  const int32_t* start;   // non-zero weights of the vertex at position i: [start[i], start[i + 1]) in offset / w
  const int32_t* offset;  // the weight's joint j as an offset into a packed side: j * 12 * L
  const T* w;
  const Run* runs;
  int64_t num_runs, B, V, J, tiles;
  T* packed;        // per block of L samples: both sides' transforms and roots, lane-innermost (pack)
  double* partial;  // [tiles, B]
};

// One side's transforms and root for the lanes of a block, lane-innermost: Ap[(j * 12 + r) * L + l].
template <typename T, int L>
void pack(const Mesh<T>& m, const int64_t* lane, int64_t J, T* Ap, T* root) {
  for (int64_t j = 0; j < J; ++j)
    for (int r = 0; r < 12; ++r)
      for (int l = 0; l < L; ++l)
        Ap[(j * 12 + r) * L + l] = m.A[lane[l] * m.ab + j * m.aj + (r / 4) * m.ar + (r % 4) * m.ac];
  for (int c = 0; c < 3; ++c)
    for (int l = 0; l < L; ++l) root[c * L + l] = m.root ? m.root[lane[l] * m.ob + c * m.oc] : T(0);
}

// L lanes of T as one GCC vector of 64 bytes: each clone lowers it to its own registers (one zmm,
// two ymm or four xmm), so both meshes' 12 transform rows stay in registers.
template <typename T>
struct Lanes {
  typedef T vec __attribute__((vector_size(64)));
  static constexpr int L = 64 / sizeof(T);
  static RF_ALWAYS_INLINE vec load(const T* p) {
    vec v;
    std::memcpy(&v, p, sizeof(vec));
    return v;
  }
  static RF_ALWAYS_INLINE vec splat(T x) {
    T a[L];
    for (int l = 0; l < L; ++l) a[l] = x;
    return load(a);
  }
};

// The rest-pose coordinates of vertex v for the L lanes; Unit: batch dimension innermost, full block.
template <typename T, bool Unit>
RF_ALWAYS_INLINE void rest_of(const Mesh<T>& m, const int64_t* lane, int64_t v, typename Lanes<T>::vec (&p)[3]) {
  constexpr int L = Lanes<T>::L;
  const T* base = m.rest + v * m.rv;
  for (int c = 0; c < 3; ++c) {
    if (Unit) {
      p[c] = Lanes<T>::load(base + c * m.rc + lane[0]);
    } else {
      T g[L];
      for (int l = 0; l < L; ++l) g[l] = base[c * m.rc + lane[l] * m.rb];
      p[c] = Lanes<T>::load(g);
    }
  }
}

// Both meshes' vertex at position i of the order, minus their roots, for the L lanes:
// x = (sum_k w_k A_{j_k}) [rest_v; 1] - root. K > 0: the vertex has exactly K non-zero weights (a
// compile-time count: runs of equal counts have no data-dependent branch); K = 0: any count. The
// weights and joint offsets are read once for both meshes.
template <typename T, int K, bool Unit>
RF_ALWAYS_INLINE void skin_pair(const Job<T>& job, const T* Pp, const T* Pg, const int64_t* lane, int64_t i,
                                typename Lanes<T>::vec (&xp)[3], typename Lanes<T>::vec (&xg)[3]) {
  using V = typename Lanes<T>::vec;
  const int32_t k0 = job.start[i], k1 = K > 0 ? k0 + K : job.start[i + 1];
  V tp[12], tg[12];
  if (K > 0) {
    const V w = Lanes<T>::splat(job.w[k0]);
    const T *ap = Pp + job.offset[k0], *ag = Pg + job.offset[k0];
    for (int r = 0; r < 12; ++r) tp[r] = w * Lanes<T>::load(ap + r * Lanes<T>::L);
    for (int r = 0; r < 12; ++r) tg[r] = w * Lanes<T>::load(ag + r * Lanes<T>::L);
  } else {
    for (int r = 0; r < 12; ++r) tp[r] = tg[r] = V{};
  }
  for (int32_t k = K > 0 ? k0 + 1 : k0; k < k1; ++k) {
    const V w = Lanes<T>::splat(job.w[k]);
    const T *ap = Pp + job.offset[k], *ag = Pg + job.offset[k];
    for (int r = 0; r < 12; ++r) tp[r] += w * Lanes<T>::load(ap + r * Lanes<T>::L);
    for (int r = 0; r < 12; ++r) tg[r] += w * Lanes<T>::load(ag + r * Lanes<T>::L);
  }
  const int64_t v = job.vertex[i];
  V p[3];
  rest_of<T, Unit>(job.p, lane, v, p);
  for (int c = 0; c < 3; ++c) xp[c] = tp[4 * c] * p[0] + tp[4 * c + 1] * p[1] + tp[4 * c + 2] * p[2] + tp[4 * c + 3];
  rest_of<T, Unit>(job.g, lane, v, p);
  for (int c = 0; c < 3; ++c) xg[c] = tg[4 * c] * p[0] + tg[4 * c + 1] * p[1] + tg[4 * c + 2] * p[2] + tg[4 * c + 3];
}

template <typename T, int K, bool Unit>
RF_ALWAYS_INLINE void run_positions(const Job<T>& job, const T* Pp, const T* Pg, const T* rp, const T* rg,
                                    const int64_t* lane, int64_t i0, int64_t i1, double* acc) {
  using V = typename Lanes<T>::vec;
  constexpr int L = Lanes<T>::L;
  V root[3];  // subtracted as (x_p - r_p) - (x_g - r_g), as the reference does
  for (int c = 0; c < 3; ++c) root[c] = Lanes<T>::load(rp + c * L);
  V rootg[3];
  for (int c = 0; c < 3; ++c) rootg[c] = Lanes<T>::load(rg + c * L);
  for (int64_t i = i0; i < i1; ++i) {
    if (Unit) {  // the order is not monotone in memory: fetch the rows a few vertices ahead
      const int64_t v = job.vertex[std::min(i + kAhead, job.V - 1)];
      for (int c = 0; c < 3; ++c) {
        __builtin_prefetch(job.p.rest + v * job.p.rv + c * job.p.rc + lane[0]);
        __builtin_prefetch(job.g.rest + v * job.g.rv + c * job.g.rc + lane[0]);
      }
    }
    V xp[3], xg[3];
    skin_pair<T, K, Unit>(job, Pp, Pg, lane, i, xp, xg);
    V d2 = V{};
    for (int c = 0; c < 3; ++c) {
      const V d = (xp[c] - root[c]) - (xg[c] - rootg[c]);
      d2 += d * d;
    }
    T s[L];
    std::memcpy(s, &d2, sizeof(V));
#pragma omp simd
    for (int l = 0; l < L; ++l) acc[l] += double(std::sqrt(s[l]));
  }
}

template <typename T, bool Unit>
RF_ALWAYS_INLINE void run_run(const Job<T>& job, int k, const T* Pp, const T* Pg, const T* rp, const T* rg,
                              const int64_t* lane, int64_t i0, int64_t i1, double* acc) {
  switch (k) {
    case 1: run_positions<T, 1, Unit>(job, Pp, Pg, rp, rg, lane, i0, i1, acc); break;
    case 2: run_positions<T, 2, Unit>(job, Pp, Pg, rp, rg, lane, i0, i1, acc); break;
    case 3: run_positions<T, 3, Unit>(job, Pp, Pg, rp, rg, lane, i0, i1, acc); break;
    case 4: run_positions<T, 4, Unit>(job, Pp, Pg, rp, rg, lane, i0, i1, acc); break;
    default: run_positions<T, 0, Unit>(job, Pp, Pg, rp, rg, lane, i0, i1, acc);
  }
}

template <typename T, int L>
int64_t packed_size(int64_t J) {
  return 2 * J * 12 * L + 6 * L;
}

template <typename T, int L>
void lanes_of(const Job<T>& job, int64_t blk, int64_t (&lane)[L]) {
  const int64_t b0 = blk * L, nl = std::min<int64_t>(L, job.B - b0);
  for (int l = 0; l < L; ++l) lane[l] = b0 + std::min<int64_t>(l, nl - 1);  // idle lanes redo the last sample
}

template <typename T, int L>
void pack_block(const Job<T>& job, int64_t blk) {
  int64_t lane[L];
  lanes_of<T, L>(job, blk, lane);
  T* buf = job.packed + blk * packed_size<T, L>(job.J);
  T *Pg = buf + job.J * 12 * L, *rp = Pg + job.J * 12 * L, *rg = rp + 3 * L;
  pack<T, L>(job.p, lane, job.J, buf, rp);
  pack<T, L>(job.g, lane, job.J, Pg, rg);
}

template <typename T, int L>
RF_ALWAYS_INLINE void run_item(const Job<T>& job, int64_t item) {
  const int64_t blk = item / job.tiles, tile = item % job.tiles;
  const int64_t b0 = blk * L, nl = std::min<int64_t>(L, job.B - b0);
  const int64_t v0 = tile * kTile, v1 = std::min(job.V, v0 + kTile);
  int64_t lane[L];
  lanes_of<T, L>(job, blk, lane);
  const T* Pp = job.packed + blk * packed_size<T, L>(job.J);
  const T *Pg = Pp + job.J * 12 * L, *rp = Pg + job.J * 12 * L, *rg = rp + 3 * L;
  const bool unit = nl == L && job.p.rb == 1 && job.g.rb == 1;
  double acc[L] = {};
  for (int64_t r = 0; r < job.num_runs; ++r) {  // SMPL: 4 runs (1 to 4 joints per vertex)
    const int64_t i0 = std::max(v0, job.runs[r].begin), i1 = std::min(v1, job.runs[r].end);
    if (i0 >= i1) continue;
    if (unit) {
      run_run<T, true>(job, job.runs[r].k, Pp, Pg, rp, rg, lane, i0, i1, acc);
    } else {
      run_run<T, false>(job, job.runs[r].k, Pp, Pg, rp, rg, lane, i0, i1, acc);
    }
  }
  for (int l = 0; l < nl; ++l) job.partial[tile * job.B + b0 + l] = acc[l];
}

template <typename T>
RF_ALWAYS_INLINE void run_items(const Job<T>& job, int64_t i0, int64_t i1) {
  constexpr int L = 64 / sizeof(T);
  for (int64_t i = i0; i < i1; ++i) run_item<T, L>(job, i);
}

// Compiled per ISA level and picked at load time (GCC function multiversioning): the lane loops
// become single AVX-512 (x86-64-v4) or paired AVX2 operations; the default clone keeps the build
// portable.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void run_range(const void* job, bool dbl, int64_t i0, int64_t i1) {
  if (dbl) {
    run_items<double>(*static_cast<const Job<double>*>(job), i0, i1);
  } else {
    run_items<float>(*static_cast<const Job<float>*>(job), i0, i1);
  }
}

template <typename T>
void compute(const at::Tensor& pred_rest, const at::Tensor& pred_A, const at::Tensor& target_rest,
             const at::Tensor& target_A, const at::Tensor& weights, const c10::optional<at::Tensor>& pred_root,
             const c10::optional<at::Tensor>& target_root, at::Tensor& out) {
  constexpr int L = 64 / sizeof(T);
  const int64_t B = pred_rest.size(0), V = pred_rest.size(1), J = weights.size(1);
  // The non-zero weights, once per call (V x J reads; microseconds for SMPL), vertices ordered by
  // their count so that each count is one run. A vertex's distance is summed wherever it falls.
  const T* wp = weights.const_data_ptr<T>();
  const int64_t s0 = weights.stride(0), s1 = weights.stride(1);
  std::vector<int32_t> count(V), vertex(V), start(V + 1), offset;
  for (int64_t v = 0; v < V; ++v) {
    int32_t c = 0;
    for (int64_t j = 0; j < J; ++j) c += wp[v * s0 + j * s1] != T(0);
    count[v] = c;
    vertex[v] = static_cast<int32_t>(v);
  }
  std::stable_sort(vertex.begin(), vertex.end(), [&](int32_t a, int32_t b) { return count[a] < count[b]; });
  std::vector<T> w;
  std::vector<Run> runs;
  for (int64_t i = 0; i < V; ++i) {
    const int64_t v = vertex[i];
    start[i] = static_cast<int32_t>(offset.size());
    for (int64_t j = 0; j < J; ++j) {
      const T x = wp[v * s0 + j * s1];
      if (x != T(0)) offset.push_back(static_cast<int32_t>(j * 12 * L)), w.push_back(x);
    }
    if (runs.empty() || runs.back().k != count[v]) runs.push_back(Run{i, i, count[v]});
    runs.back().end = i + 1;
  }
  start[V] = static_cast<int32_t>(offset.size());
  const int64_t tiles = (V + kTile - 1) / kTile, blocks = (B + L - 1) / L;
  std::vector<double> partial(tiles * B);
  std::vector<T> packed(blocks * packed_size<T, L>(J));
  Job<T> job{mesh<T>(pred_rest, pred_A, pred_root),
             mesh<T>(target_rest, target_A, target_root),
             vertex.data(),
             start.data(),
             offset.data(),
             w.data(),
             runs.data(),
             static_cast<int64_t>(runs.size()),
             B,
             V,
             J,
             tiles,
             packed.data(),
             partial.data()};
  at::parallel_for(0, blocks, 4, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) pack_block<T, L>(job, k);
  });
  at::parallel_for(0, blocks * tiles, 1, [&](int64_t i0, int64_t i1) {
    run_range(&job, std::is_same_v<T, double>, i0, i1);
  });
  T* o = out.data_ptr<T>();
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t t = 0; t < tiles; ++t) s += partial[t * B + b];
    o[b] = static_cast<T>(s / double(V));
  }
}

at::Tensor lbs_vertex_error_cpu(const at::Tensor& pred_rest, const at::Tensor& pred_transforms,
                                const at::Tensor& target_rest, const at::Tensor& target_transforms,
                                const at::Tensor& weights, const c10::optional<at::Tensor>& pred_root,
                                const c10::optional<at::Tensor>& target_root) {
  check_lbs_vertex_error("lbs_vertex_error", pred_rest, pred_transforms, target_rest, target_transforms, weights,
                         pred_root, target_root);
  TORCH_CHECK(pred_rest.size(1) < INT32_MAX / std::max<int64_t>(weights.size(1), 1), "lbs_vertex_error: ",
              pred_rest.size(1), " vertices x ", weights.size(1), " joints is too many");
  at::Tensor out = at::empty({pred_rest.size(0)}, pred_rest.options());
  if (pred_rest.size(0) == 0) return out;
  if (pred_rest.size(1) == 0) return out.zero_();
  if (pred_rest.scalar_type() == at::kDouble) {
    compute<double>(pred_rest, pred_transforms, target_rest, target_transforms, weights, pred_root, target_root, out);
  } else {
    compute<float>(pred_rest, pred_transforms, target_rest, target_transforms, weights, pred_root, target_root, out);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(romp_fast, CPU, m) { m.impl("lbs_vertex_error", &lbs_vertex_error_cpu); }

}  // namespace romp_fast
