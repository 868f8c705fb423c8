// CPU kernel behind romp_fast.evaluation.tracking's default path: one pass over a sequence (TrackEval's
// per-frame lists read in place, or flat arrays) that accumulates every count HOTA, CLEAR and
// Identity need, exactly as TrackEval defines them (trackeval/metrics/{hota,clear,identity}.py,
// PyPI trackeval 1.3.0):
//
// - HOTA (Luiten et al., IJCV 2020): per pair of detections the soft match sim / (row sum + column
//   sum - sim) summed per (gt id, tracker id) into C; alignment A = C / (n_g + n_t - C); per frame one
//   maximum-weight matching on A * sim shared by every alpha; per alpha the matched pairs with
//   sim >= alpha - eps count (TP, summed similarity, matches per id pair).
// - CLEAR (Bernardin & Stiefelhagen 2008): frame by frame, weight 1000 * [continues the previous
//   active frame's match] + sim over the pairs with sim >= threshold - eps; IDSW against the last
//   match of the gt id at any earlier time; Frag, MT / PT from per-id counts.
// - Identity (Ristani et al. 2016): per id pair the number of frames with sim >= threshold; IDTP is
//   the value of a maximum-weight matching of those counts (TrackEval's (G+T) x (G+T) problem of
//   IDFN + IDFP has the same optimum).
//
// TrackEval solves every frame's whole matrix with scipy. A maximum-weight matching with
// non-negative weights decomposes over the connected components of the graph of positive pairs,
// so here each component is solved on its own (most are one pair: matched without solving) by the
// exact solver of linear_assignment (lsa_solver.h). The matched pairs that count are TrackEval's
// whenever each optimum is unique. The Python reference is romp_fast/evaluation/tracking/{hota,
// clear,identity}.py; tests/evaluation/tracking compares both with TrackEval.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/library.h>
#ifdef ROMP_FAST_NUMPY
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "lsa_solver.h"
#include "share_work.h"

namespace romp_fast {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();  // TrackEval's np.finfo('float').eps

// (gt id, tracker id) -> a compact pair index, dense for small id spaces, open addressing otherwise.
class PairIndex {
 public:
  PairIndex(int64_t G, int64_t T, int64_t dense_limit) : T_(T), dense_(G * T <= dense_limit) {
    if (dense_) {
      table_.assign(static_cast<size_t>(G * T), -1);
    } else {
      slots_.assign(1024, -1);
    }
  }
  __attribute__((always_inline)) int32_t operator()(int64_t g, int64_t t) {
    const int64_t key = g * T_ + t;
    if (dense_) {
      int32_t& v = table_[key];
      if (v < 0) v = add(key);
      return v;
    }
    return hashed(key);
  }
  int64_t size() const { return static_cast<int64_t>(keys_.size()); }
  int64_t key(int32_t p) const { return keys_[p]; }

 private:
  int32_t hashed(int64_t key) {
    if (2 * (keys_.size() + 1) > slots_.size()) grow();
    const uint64_t mask = slots_.size() - 1;
    for (uint64_t h = hash(key) & mask;; h = (h + 1) & mask) {
      const int32_t v = slots_[h];
      if (v < 0) return slots_[h] = add(key);
      if (keys_[v] == key) return v;
    }
  }
  static uint64_t hash(int64_t key) {  // splitmix64 finaliser
    uint64_t z = static_cast<uint64_t>(key) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int32_t add(int64_t key) {
    TORCH_CHECK(keys_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                "_tracking_counts: more than 2^31 id pairs");
    keys_.push_back(key);
    return static_cast<int32_t>(keys_.size() - 1);
  }
  void grow() {
    slots_.assign(slots_.size() * 2, -1);
    const uint64_t mask = slots_.size() - 1;
    for (size_t v = 0; v < keys_.size(); ++v) {
      uint64_t h = hash(keys_[v]) & mask;
      while (slots_[h] >= 0) h = (h + 1) & mask;
      slots_[h] = static_cast<int32_t>(v);
    }
  }
  int64_t T_;
  bool dense_;
  std::vector<int32_t> table_, slots_;
  std::vector<int64_t> keys_;
};

// Maximum-weight matching (zero-weight pairs allowed, as in TrackEval's dense matrices) of a sparse
// bipartite graph, one exact dense solve per connected component with more than one edge. Called
// once per frame, so nothing is cleared per call: per-node arrays are reset through the edges that
// set them.
class SparseMatcher {
 public:
  // Rows 0..nr-1, columns 0..nc-1; edge k joins er[k] and ec[k] with weight wt[k] >= 0; edges are
  // sorted by row. Sets matched[k] (0/1) for every edge.
  void match(int64_t nr, int64_t nc, int64_t K, const int32_t* er, const int32_t* ec, const double* wt,
             uint8_t* matched) {
    if (K == 0) return;
    if (static_cast<int64_t>(deg_r_.size()) < nr) deg_r_.resize(nr, 0);
    if (static_cast<int64_t>(deg_c_.size()) < nc) {
      deg_c_.resize(nc, 0), parent_.resize(nc), label_.resize(nc, -1), local_c_.resize(nc, -1);
    }
    if (static_cast<int64_t>(local_r_.size()) < nr) local_r_.resize(nr, -1);
    if (static_cast<int64_t>(shared_.size()) < K) shared_.resize(K), comp_.resize(K), order_.resize(K);
    for (int64_t k = 0; k < K; ++k) ++deg_r_[er[k]], ++deg_c_[ec[k]];
    int64_t S = 0;  // edges that share a row or a column with another edge
    for (int64_t k = 0; k < K; ++k) {
      const bool alone = (deg_r_[er[k]] | deg_c_[ec[k]]) == 1;
      matched[k] = alone;
      shared_[S] = static_cast<int32_t>(k);
      S += !alone;
    }
    for (int64_t k = 0; k < K; ++k) deg_r_[er[k]] = 0, deg_c_[ec[k]] = 0;
    if (S == 0) return;
    // Components through the columns: a row joins the columns of its edges (union-find, path halving).
    for (int64_t i = 0; i < S; ++i) parent_[ec[shared_[i]]] = ec[shared_[i]];
    for (int64_t i = 0, root = -1; i < S; ++i) {
      const int32_t k = shared_[i];
      const int32_t b = find(ec[k]);
      if (i == 0 || er[k] != er[shared_[i - 1]]) {
        root = b;  // first edge of its row
      } else if (b != root) {
        parent_[b] = static_cast<int32_t>(root);
      }
    }
    int32_t U = 0;
    for (int64_t i = 0; i < S; ++i) {
      const int32_t root = find(ec[shared_[i]]);
      int32_t& lab = label_[root];
      if (lab < 0) lab = U++;
      comp_[i] = lab;
      order_[i] = root;  // scratch: the root, to unset the labels below
    }
    for (int64_t i = 0; i < S; ++i) label_[order_[i]] = -1;  // unset for the next call
    // Edges grouped by component (counting sort), each group still sorted by row.
    start_.assign(U + 1, 0);
    for (int64_t i = 0; i < S; ++i) ++start_[comp_[i] + 1];
    for (int32_t u = 0; u < U; ++u) start_[u + 1] += start_[u];
    fill_.assign(start_.begin(), start_.end() - 1);
    for (int64_t i = 0; i < S; ++i) order_[fill_[comp_[i]]++] = shared_[i];
    for (int32_t u = 0; u < U; ++u) solve_component(er, ec, wt, matched, start_[u], start_[u + 1]);
  }

 private:
  int32_t find(int32_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }

  void solve_component(const int32_t* er, const int32_t* ec, const double* wt, uint8_t* matched, int32_t b,
                       int32_t e) {
    int32_t rc = 0, cc = 0;
    for (int32_t i = b; i < e; ++i) {  // number the component's rows and columns
      const int32_t k = order_[i];
      if (local_r_[er[k]] < 0) local_r_[er[k]] = rc++;
      if (local_c_[ec[k]] < 0) local_c_[ec[k]] = cc++;
    }
    if (rc == 1 || cc == 1) {  // a star: its heaviest edge (the first of equal ones)
      int32_t best = order_[b];
      for (int32_t i = b + 1; i < e; ++i)
        if (wt[order_[i]] > wt[best]) best = order_[i];
      matched[best] = 1;
    } else if (rc == 2 && cc == 2) {  // the heavier of the two diagonals (absent pairs weigh 0)
      double d[2][2] = {{0, 0}, {0, 0}};
      for (int32_t i = b; i < e; ++i) {
        const int32_t k = order_[i];
        d[local_r_[er[k]]][local_c_[ec[k]]] = wt[k];
      }
      const int32_t anti = d[0][1] + d[1][0] > d[0][0] + d[1][1];
      for (int32_t i = b; i < e; ++i) {
        const int32_t k = order_[i];
        matched[k] = (local_r_[er[k]] ^ local_c_[ec[k]]) == anti;
      }
    } else if (small_enough(rc, cc)) {  // every assignment of the smaller side, at most 24
      double d[4][5] = {};
      const bool tr = rc > cc;  // rows of d: the smaller side
      for (int32_t i = b; i < e; ++i) {
        const int32_t k = order_[i];
        const int32_t r = local_r_[er[k]], c = local_c_[ec[k]];
        (tr ? d[c][r] : d[r][c]) = wt[k];
      }
      int32_t pick[4], best_pick[4];
      double best = -1;
      enumerate(d, tr ? cc : rc, tr ? rc : cc, 0, 0u, 0.0, pick, best, best_pick);
      for (int32_t i = b; i < e; ++i) {
        const int32_t k = order_[i];
        const int32_t r = local_r_[er[k]], c = local_c_[ec[k]];
        matched[k] = tr ? best_pick[c] == r : best_pick[r] == c;
      }
    } else {
      block_.assign(static_cast<size_t>(rc) * cc, 0.0);
      for (int32_t i = b; i < e; ++i) {
        const int32_t k = order_[i];
        block_[static_cast<size_t>(local_r_[er[k]]) * cc + local_c_[ec[k]]] = wt[k];
      }
      out_.resize(rc);
      static const lsa::Gate maximise = lsa::Gate::make(true, false, 0.0);
      lsa::solve_problem<double>(block_.data(), cc, rc, cc, maximise, ws_, out_.data());
      for (int32_t i = b; i < e; ++i) {
        const int32_t k = order_[i];
        matched[k] = out_[local_r_[er[k]]] == local_c_[ec[k]];
      }
    }
    for (int32_t i = b; i < e; ++i) {
      const int32_t k = order_[i];
      local_r_[er[k]] = -1, local_c_[ec[k]] = -1;
    }
  }

  // Brute force pays below a dense solve for 3x3, 3x4, 4x4 (and their transposes) and 2 x up to 5.
  static bool small_enough(int32_t rc, int32_t cc) {
    const int32_t lo = std::min(rc, cc), hi = std::max(rc, cc);
    return (lo == 2 && hi <= 5) || (lo == 3 && hi <= 4) || (lo == 4 && hi == 4);
  }
  // Best total over the injective maps of rows [row, n) into unused columns (bits of `used`); the
  // first best in enumeration order wins ties.
  static void enumerate(const double (&d)[4][5], int32_t n, int32_t m, int32_t row, unsigned used, double sum,
                        int32_t* pick, double& best, int32_t* best_pick) {
    if (row >= n || row >= 4) {  // n <= 4 (the second test tells the compiler so)
      if (sum > best) best = sum, std::copy_n(pick, n, best_pick);
      return;
    }
    for (int32_t c = 0; c < m; ++c) {
      if (used >> c & 1u) continue;
      pick[row] = c;
      enumerate(d, n, m, row + 1, used | (1u << c), sum + d[row][c], pick, best, best_pick);
    }
  }

  std::vector<int32_t> deg_r_, deg_c_, parent_, label_, shared_, comp_, start_, fill_, order_, local_r_, local_c_;
  std::vector<double> block_;
  std::vector<int64_t> out_;
  lsa::Workspace ws_;
};

// Appends the positive entries of one frame's [ng, nt] similarity matrix (row-major) to er/ec/es
// (room for every entry is left by the caller) and returns their number; `bad` is set when an entry
// is negative, infinite or NaN. About 93 % of the entries are 0 in tracking data, so the work is
// the compares: the matrix is scanned as one flat array, 8 (AVX-512) or 4 (AVX2) doubles per
// compare into a 64-bit mask per 64 entries, then one step per positive entry. Plain loads only:
// masked loads are several times slower on some AMD cores, so the last few entries of a frame
// are compared one by one.
// What the vector scans share: the entries of a 64-entry block compared one by one (the tail of a
// frame), and the positive entries of a block appended with their row and column.
inline void scan_tail(const double* s, int64_t from, int64_t len, uint64_t& pos, bool& fail) {
  for (int64_t c = from; c < len; ++c) {
    pos |= static_cast<uint64_t>(s[c] > 0) << c;
    fail |= !(s[c] >= 0 && s[c] < std::numeric_limits<double>::infinity());
  }
}

struct ScanOut {
  int32_t *er, *ec;
  double* es;
  int64_t nt, n = 0, r = 0, row_end;
  ScanOut(int32_t* er_, int32_t* ec_, double* es_, int64_t nt_) : er(er_), ec(ec_), es(es_), nt(nt_), row_end(nt_) {}
  // Entries c0 + i for the set bits i of pos; entries come in increasing order, so the row only advances.
  void emit(const double* s, uint64_t pos, int64_t c0) {
    for (; pos; pos &= pos - 1) {
      const int64_t j = c0 + __builtin_ctzll(pos);
      while (j >= row_end) ++r, row_end += nt;
      er[n] = static_cast<int32_t>(r), ec[n] = static_cast<int32_t>(j - (row_end - nt)), es[n] = s[j];
      ++n;
    }
  }
};

#if defined(__GNUC__) && defined(__x86_64__)
#define RF_SCAN_X86 1
__attribute__((target("avx512f"))) int64_t scan_frame_avx512(const double* s, int64_t ng, int64_t nt, int32_t* er,
                                                              int32_t* ec, double* es, bool& bad) {
  const __m512d zero = _mm512_setzero_pd(), inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  __mmask8 ok = 0xFF;
  bool fail = false;
  ScanOut out(er, ec, es, nt);
  for (int64_t c0 = 0; c0 < ng * nt; c0 += 64) {
    const int64_t len = std::min<int64_t>(64, ng * nt - c0);
    uint64_t pos = 0;
    int64_t c = 0;
    for (; c + 8 <= len; c += 8) {
      const __m512d v = _mm512_loadu_pd(s + c0 + c);
      pos |= static_cast<uint64_t>(_mm512_cmp_pd_mask(v, zero, _CMP_GT_OQ)) << c;
      ok &= _mm512_cmp_pd_mask(v, zero, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v, inf, _CMP_LT_OQ);  // NaN fails
    }
    scan_tail(s + c0, c, len, pos, fail);
    out.emit(s, pos, c0);
  }
  bad |= fail || ok != 0xFF;
  return out.n;
}

__attribute__((target("avx2"))) int64_t scan_frame_avx2(const double* s, int64_t ng, int64_t nt, int32_t* er,
                                                         int32_t* ec, double* es, bool& bad) {
  const __m256d zero = _mm256_setzero_pd(), inf = _mm256_set1_pd(std::numeric_limits<double>::infinity());
  int ok = 15;
  bool fail = false;
  ScanOut out(er, ec, es, nt);
  for (int64_t c0 = 0; c0 < ng * nt; c0 += 64) {
    const int64_t len = std::min<int64_t>(64, ng * nt - c0);
    uint64_t pos = 0;
    int64_t c = 0;
    for (; c + 4 <= len; c += 4) {
      const __m256d v = _mm256_loadu_pd(s + c0 + c);
      pos |= static_cast<uint64_t>(_mm256_movemask_pd(_mm256_cmp_pd(v, zero, _CMP_GT_OQ))) << c;
      ok &= _mm256_movemask_pd(_mm256_and_pd(_mm256_cmp_pd(v, zero, _CMP_GE_OQ), _mm256_cmp_pd(v, inf, _CMP_LT_OQ)));
    }
    scan_tail(s + c0, c, len, pos, fail);
    out.emit(s, pos, c0);
  }
  bad |= fail || ok != 15;
  return out.n;
}
#endif

int64_t scan_frame_scalar(const double* s, int64_t ng, int64_t nt, int32_t* er, int32_t* ec, double* es, bool& bad) {
  int64_t n = 0;
  bool fail = false;
  for (int64_t r = 0; r < ng; ++r, s += nt) {
    for (int64_t c = 0; c < nt; ++c) {
      const double v = s[c];
      fail |= !(v >= 0 && v < std::numeric_limits<double>::infinity());
      er[n] = static_cast<int32_t>(r), ec[n] = static_cast<int32_t>(c), es[n] = v;  // kept when positive
      n += v > 0;
    }
  }
  bad |= fail;
  return n;
}

using ScanFn = int64_t (*)(const double*, int64_t, int64_t, int32_t*, int32_t*, double*, bool&);

// The widest scan the CPU runs; ROMP_FAST_TRACKING_SCAN=scalar|avx2 picks a narrower one (tests).
ScanFn pick_scan() {
  const char* force = std::getenv("ROMP_FAST_TRACKING_SCAN");
  const std::string want = force ? force : "";
  if (want == "scalar") return scan_frame_scalar;
#ifdef RF_SCAN_X86
  if (want != "avx2" && __builtin_cpu_supports("avx512f")) return scan_frame_avx512;
  if (__builtin_cpu_supports("avx2")) return scan_frame_avx2;
#endif
  return scan_frame_scalar;
}

enum Metric : int64_t { kHota = 1, kClear = 2, kIdentity = 4 };

// A sequence as per-frame pointers: frame f has gptr[f + 1] - gptr[f] gt detections with ids gid[f][.],
// tptr[f + 1] - tptr[f] tracker detections with ids tid[f][.], and a row-major [n_gt, n_tracker]
// float64 similarity matrix sim[f]. Both entry points (flat tensors, TrackEval's per-frame lists)
// build one.
struct Frames {
  int64_t F = 0;
  std::vector<const double*> sim;
  std::vector<const int64_t*> gid, tid;
  std::vector<int64_t> gptr{0}, tptr{0};
};

struct Counts {
  std::vector<double> hota;  // [5, A]: TP, summed similarity, numerators of AssA, AssRe, AssPr
  int64_t clear[5] = {0, 0, 0, 0, 0};  // CLR_TP, IDSW, MT, PT, Frag
  int64_t idtp = 0;
  double motp_sum = 0;
};

constexpr const char* kOp = "_tracking_counts";

// An array of trivially copyable values that is never zero-filled: the scan reserves room for every
// entry of a frame but writes only the positive ones (about 7 %), so a std::vector's value-
// initialisation would write ten times the memory the edges need.
template <typename T>
class PodBuf {
 public:
  T* data() { return p_.get(); }
  const T* data() const { return p_.get(); }
  T& operator[](int64_t i) { return p_[i]; }
  const T& operator[](int64_t i) const { return p_[i]; }
  // Capacity for at least `need` values, the first `keep` preserved.
  void ensure(int64_t need, int64_t keep) {
    if (need <= cap_) return;
    const int64_t cap = std::max<int64_t>(need, 2 * cap_);
    std::unique_ptr<T[]> q(new T[cap]);
    std::copy_n(p_.get(), keep, q.get());
    p_ = std::move(q), cap_ = cap;
  }

 private:
  std::unique_ptr<T[]> p_;
  int64_t cap_ = 0;
};

// Edges (positive similarities) of a run of frames, and what the scan found wrong first.
struct Scan {
  PodBuf<int32_t> er, ec;  // local row, column
  PodBuf<double> es;       // similarity
  std::vector<int64_t> eptr;    // per frame of the run: first edge, relative to the run
  std::vector<int64_t> gt_count, tr_count;
  std::string error;
};

// Frames [f0, f1): ids checked and counted, positive entries collected. The first problem is kept
// as a message (not thrown) so that the caller can report the earliest frame's.
void scan_frames(const Frames& fr, int64_t f0, int64_t f1, int64_t G, int64_t T, Scan& out) {
  static const ScanFn scan = pick_scan();
  const int64_t* gptr = fr.gptr.data();
  const int64_t* tptr = fr.tptr.data();
  out.gt_count.assign(G, 0), out.tr_count.assign(T, 0);
  out.eptr.assign(f1 - f0 + 1, 0);
  std::vector<int64_t> seen_g(G, -1), seen_t(T, -1);  // frame where each id was last seen
  int64_t K = 0;
  for (int64_t f = f0; f < f1; ++f) {
    const int64_t ng = gptr[f + 1] - gptr[f], nt = tptr[f + 1] - tptr[f];
    for (int pass = 0; pass < 2; ++pass) {
      const int64_t* ids = pass ? fr.tid[f] : fr.gid[f];
      const int64_t n = pass ? T : G, len = pass ? nt : ng;
      int64_t* seen = pass ? seen_t.data() : seen_g.data();
      int64_t* count = pass ? out.tr_count.data() : out.gt_count.data();
      bool ok = true;
      for (int64_t i = 0; i < len && ok; ++i) {
        const int64_t id = ids[i];
        ok = id >= 0 && id < n && seen[id] != f;
        if (ok) seen[id] = f, ++count[id];
      }
      if (ok) continue;
      const char* name = pass ? "tracker_ids[" : "gt_ids[";
      for (int64_t i = 0; i < len && out.error.empty(); ++i) {  // the offending id, for the message
        if (ids[i] < 0 || ids[i] >= n) {
          out.error = c10::str(kOp, ": ", name, f, "] holds id ", ids[i], ", outside [0, ", n, ")");
        } else {
          for (int64_t j = 0; j < i; ++j)
            if (ids[j] == ids[i]) out.error = c10::str(kOp, ": ", name, f, "] repeats id ", ids[i]);
        }
      }
      return;
    }
    const int64_t room = K + ng * nt;  // room for every entry of the frame
    out.er.ensure(room, K), out.ec.ensure(room, K), out.es.ensure(room, K);
    bool bad = false;
    K += scan(fr.sim[f], ng, nt, out.er.data() + K, out.ec.data() + K, out.es.data() + K, bad);
    out.eptr[f - f0 + 1] = K;
    if (bad) {  // the first offending value, for the message
      const double* s = fr.sim[f];
      int64_t i = 0;
      while (s[i] >= 0 && s[i] < std::numeric_limits<double>::infinity()) ++i;
      out.error = c10::str(kOp, ": similarity_scores[", f, "] holds ", s[i], "; similarities must be finite and >= 0");
      return;
    }
  }
}

// Every count of the metrics asked for (bits of `metrics`). alpha_min [A] ascending (alpha - eps);
// clear_min = threshold - eps; id_min = threshold. Raises ValueError naming the frame for ids out of
// range or repeated within a frame and for similarities that are negative, infinite or NaN.
//
// Work is shared among torch's threads (share_work.h): the scan in runs of frames; then HOTA's
// alignment scores (task 0), CLEAR (sequential over frames) and Identity (task 1), and HOTA's
// per-frame matchings in chunks of frames, each claimed by whichever thread is free.
void tracking_counts(const Frames& fr, int64_t G, int64_t T, const double* alpha_min, int64_t A, double clear_min,
                     double id_min, int64_t metrics, int64_t dense_limit, Counts& out) {
  const char* op = kOp;
  const int64_t F = fr.F;
  const int64_t* gptr = fr.gptr.data();
  const int64_t* tptr = fr.tptr.data();
  const int64_t Dg = gptr[F], Dt = tptr[F];
  TORCH_CHECK(G >= 0 && T >= 0 && G < (int64_t{1} << 31) && T < (int64_t{1} << 31), op,
              ": num_gt_ids and num_tracker_ids must be in [0, 2^31), got ", G, " and ", T);
  for (int64_t a = 1; a < A; ++a) TORCH_CHECK(alpha_min[a - 1] <= alpha_min[a], op, ": alpha_min must ascend");
  const bool want_hota = metrics & kHota, want_clear = metrics & kClear, want_id = metrics & kIdentity;

  // 1. Scan, in at most 8 runs of frames (at least 64k entries each) taken by whichever thread is
  // free; edges end up in frame order, with their local row and column. Row and column sums need
  // only the edges: zeros add nothing.
  int64_t total = 0;
  for (int64_t f = 0; f < F; ++f) total += (gptr[f + 1] - gptr[f]) * (tptr[f + 1] - tptr[f]);
  // Each run keeps id tables of G + T entries: fewer runs for very large id spaces.
  const int64_t max_runs = std::clamp<int64_t>((int64_t{1} << 24) / (G + T + 1), 1, 8);
  const int64_t run_entries = std::max<int64_t>(65536, total / max_runs + 1);
  std::vector<int64_t> cut{0};
  for (int64_t f = 0, acc = 0; f < F; ++f) {
    acc += (gptr[f + 1] - gptr[f]) * (tptr[f + 1] - tptr[f]);
    if (acc >= run_entries && f + 1 < F) cut.push_back(f + 1), acc = 0;
  }
  cut.push_back(F);
  std::vector<Scan> parts(cut.size() - 1);
  share_work(static_cast<int64_t>(parts.size()), at::get_num_threads(),
             [&](int64_t i) { scan_frames(fr, cut[i], cut[i + 1], G, T, parts[i]); });
  for (const Scan& p : parts) TORCH_CHECK_VALUE(p.error.empty(), p.error);  // the earliest frame's problem
  std::vector<int64_t> gt_count(G, 0), tr_count(T, 0), eptr(F + 1, 0);
  int64_t K = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Scan& p = parts[i];
    for (int64_t g = 0; g < G; ++g) gt_count[g] += p.gt_count[g];
    for (int64_t t = 0; t < T; ++t) tr_count[t] += p.tr_count[t];
    for (int64_t f = cut[i]; f < cut[i + 1]; ++f) eptr[f + 1] = K + p.eptr[f - cut[i] + 1];
    K = eptr[cut[i + 1]];
  }
  PodBuf<int32_t> er, ec;
  PodBuf<double> es;
  if (parts.size() == 1) {
    er = std::move(parts[0].er), ec = std::move(parts[0].ec), es = std::move(parts[0].es);
  } else {
    er.ensure(K, 0), ec.ensure(K, 0), es.ensure(K, 0);
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t k0 = eptr[cut[i]], n = eptr[cut[i + 1]] - k0;
      std::copy_n(parts[i].er.data(), n, er.data() + k0);
      std::copy_n(parts[i].ec.data(), n, ec.data() + k0);
      std::copy_n(parts[i].es.data(), n, es.data() + k0);
    }
  }
  parts.clear();

  // 2. The id pair of every edge.
  PairIndex pairs(G, T, dense_limit);
  PodBuf<int32_t> ep;
  ep.ensure(K, 0);
  for (int64_t f = 0; f < F; ++f) {
    const int64_t* gi = fr.gid[f];
    const int64_t* ti = fr.tid[f];
    for (int64_t k = eptr[f]; k < eptr[f + 1]; ++k) ep[k] = pairs(gi[er[k]], ti[ec[k]]);
  }
  std::vector<int64_t> id_count;  // Identity: frames with sim >= id_min, per pair
  const bool id_all_pairs = want_id && id_min <= 0;  // a threshold <= 0 admits zero similarities too
  if (id_all_pairs) {  // every pair of detections that share a frame
    for (int64_t f = 0; f < F; ++f)
      for (int64_t i = 0; i < gptr[f + 1] - gptr[f]; ++i)
        for (int64_t j = 0; j < tptr[f + 1] - tptr[f]; ++j) {
          const int32_t p = pairs(fr.gid[f][i], fr.tid[f][j]);
          if (p >= static_cast<int32_t>(id_count.size())) id_count.resize(p + 1, 0);
          ++id_count[p];
        }
  }
  const int64_t P = pairs.size();
  const int64_t Tn = std::max<int64_t>(T, 1);
  out.hota.assign(5 * A, 0.0);

  // HOTA 1: global alignment score per id pair (TrackEval adds sim / (col sum + row sum - sim)),
  // and each edge's matching weight A * sim.
  PodBuf<double> w_hota;
  w_hota.ensure(want_hota ? K : 0, 0);
  auto hota_prepare = [&] {
    std::vector<double> row_sum(Dg, 0.0), col_sum(Dt, 0.0), C(P, 0.0), align(P);
    for (int64_t f = 0; f < F; ++f) {
      double* rs = row_sum.data() + gptr[f];
      double* cs = col_sum.data() + tptr[f];
      for (int64_t k = eptr[f]; k < eptr[f + 1]; ++k) rs[er[k]] += es[k], cs[ec[k]] += es[k];
    }
    for (int64_t f = 0; f < F; ++f) {
      const double* rs = row_sum.data() + gptr[f];
      const double* cs = col_sum.data() + tptr[f];
      for (int64_t k = eptr[f]; k < eptr[f + 1]; ++k) {
        const double denom = cs[ec[k]] + rs[er[k]] - es[k];
        C[ep[k]] += denom > 0 + kEps ? es[k] / denom : 0.0;
      }
    }
    for (int64_t p = 0; p < P; ++p) {
      const int64_t key = pairs.key(static_cast<int32_t>(p));
      align[p] = C[p] / (static_cast<double>(gt_count[key / Tn]) + static_cast<double>(tr_count[key % Tn]) - C[p]);
    }
    for (int64_t k = 0; k < K; ++k) w_hota[k] = align[ep[k]] * es[k];
  };
  // HOTA 2 (below): one matching per frame on A * sim.
  std::vector<uint8_t> matched_hota(want_hota ? K + 1 : 0, 0);
  constexpr int64_t kChunk = 64;

  auto run_clear = [&] {
    std::vector<int64_t> prev_tid(G, -1), prev_ts_tid(G, -1), prev_ts_at(G, -2), matched_count(G, 0), frag(G, 0);
    std::vector<int32_t> cand, cr, cc;
    std::vector<double> w;
    std::vector<uint8_t> matched;
    SparseMatcher matcher;
    int64_t clr_tp = 0, idsw = 0, active = -1;
    double motp = 0;
    for (int64_t f = 0; f < F; ++f) {
      const int64_t ng = gptr[f + 1] - gptr[f], nt = tptr[f + 1] - tptr[f];
      if (ng == 0 || nt == 0) continue;  // FP / FN only; the previous frame's matches stay
      ++active;
      const int64_t* gi = fr.gid[f];
      const int64_t* ti = fr.tid[f];
      cand.clear(), cr.clear(), cc.clear(), w.clear();
      for (int64_t k = eptr[f]; k < eptr[f + 1]; ++k) {
        if (!(es[k] >= clear_min)) continue;
        const int64_t g = gi[er[k]];
        const bool cont = prev_ts_at[g] == active - 1 && prev_ts_tid[g] == ti[ec[k]];
        cand.push_back(static_cast<int32_t>(k)), cr.push_back(er[k]), cc.push_back(ec[k]);
        w.push_back(1000.0 * cont + es[k]);  // TrackEval: 1000 * continues + similarity
      }
      const int64_t n = static_cast<int64_t>(cand.size());
      if (static_cast<int64_t>(matched.size()) < n) matched.resize(n);
      matcher.match(ng, nt, n, cr.data(), cc.data(), w.data(), matched.data());
      for (int64_t i = 0; i < n; ++i) {
        if (!matched[i]) continue;
        const int64_t k = cand[i], g = gi[er[k]], t = ti[ec[k]];
        idsw += prev_tid[g] >= 0 && prev_tid[g] != t;
        ++matched_count[g];
        frag[g] += prev_ts_at[g] != active - 1;  // tracked now, not in the previous active frame
        prev_tid[g] = t, prev_ts_tid[g] = t, prev_ts_at[g] = active;
        ++clr_tp;
        motp += es[k];
      }
    }
    int64_t mt = 0, pt = 0, frags = 0;
    for (int64_t g = 0; g < G; ++g) {
      if (gt_count[g] > 0) {
        const double ratio = static_cast<double>(matched_count[g]) / static_cast<double>(gt_count[g]);
        mt += ratio > 0.8;
        pt += ratio >= 0.2;
      }
      frags += frag[g] > 0 ? frag[g] - 1 : 0;
    }
    out.clear[0] = clr_tp, out.clear[1] = idsw, out.clear[2] = mt, out.clear[3] = pt - mt, out.clear[4] = frags;
    out.motp_sum = motp;
  };

  auto run_identity = [&] {
    if (!id_all_pairs) {  // the positive pairs at or above the threshold (none for a NaN threshold)
      id_count.assign(P, 0);
      for (int64_t k = 0; k < K; ++k) id_count[ep[k]] += es[k] >= id_min;
    }
    std::vector<int32_t> cr, cc, nz;
    std::vector<double> w;
    for (size_t p = 0; p < id_count.size(); ++p)
      if (id_count[p] > 0) nz.push_back(static_cast<int32_t>(p));
    std::sort(nz.begin(), nz.end(), [&](int32_t a, int32_t b) { return pairs.key(a) < pairs.key(b); });  // by gt id
    for (const int32_t p : nz) {
      const int64_t key = pairs.key(p);
      cr.push_back(static_cast<int32_t>(key / Tn)), cc.push_back(static_cast<int32_t>(key % Tn));
      w.push_back(static_cast<double>(id_count[p]));
    }
    const int64_t n = static_cast<int64_t>(w.size());
    std::vector<uint8_t> matched(n + 1, 0);
    SparseMatcher matcher;
    matcher.match(G, T, n, cr.data(), cc.data(), w.data(), matched.data());
    int64_t idtp = 0;
    for (int64_t i = 0; i < n; ++i)
      if (matched[i]) idtp += static_cast<int64_t>(w[i]);
    out.idtp = idtp;
  };

  // 3. Task 0: HOTA's scores; task 1: CLEAR and Identity; then HOTA's matchings in chunks of frames
  // (after task 0: a thread that gets there first waits for it; if it failed, they do nothing and
  // share_work rethrows its exception).
  enum : int { kPending, kReady, kFailed };
  std::atomic<int> prepared{kPending};
  const int64_t chunks = want_hota ? (F + kChunk - 1) / kChunk : 0;
  share_work(2 + chunks, at::get_num_threads(), [&](int64_t i) {
    if (i == 0) {
      try {
        if (want_hota) hota_prepare();
      } catch (...) {
        prepared.store(kFailed, std::memory_order_release);
        throw;
      }
      prepared.store(kReady, std::memory_order_release);
    } else if (i == 1) {
      if (want_clear) run_clear();
      if (want_id) run_identity();
    } else {
      int state;
      while ((state = prepared.load(std::memory_order_acquire)) == kPending) std::this_thread::yield();
      if (state == kFailed) return;
      SparseMatcher matcher;
      const int64_t f0 = (i - 2) * kChunk;
      for (int64_t f = f0; f < std::min(F, f0 + kChunk); ++f) {
        const int64_t k0 = eptr[f];
        matcher.match(gptr[f + 1] - gptr[f], tptr[f + 1] - tptr[f], eptr[f + 1] - k0, er.data() + k0,
                      ec.data() + k0, w_hota.data() + k0, matched_hota.data() + k0);
      }
    }
  });
  if (!want_hota) return;

  // HOTA 3: per alpha counts of the matched pairs (sim >= alpha - eps): each matched edge's level
  // (the number of alphas it passes), histograms of levels overall and per id pair.
  PodBuf<int32_t> hit;
  hit.ensure(K, 0);
  int64_t M = 0;
  for (int64_t k = 0; k < K; ++k) hit[M] = static_cast<int32_t>(k), M += matched_hota[k];
  std::vector<int64_t> tp_hist(A + 1, 0);
  std::vector<double> loc_hist(A + 1, 0.0);
  std::vector<int32_t> slot(P, -1), slot_pair, pair_hist;  // [id pairs matched at least once, A + 1]
  slot_pair.reserve(std::min<int64_t>(P, M));
  pair_hist.reserve(std::min<int64_t>(P, M) * (A + 1));
  for (int64_t i = 0; i < M; ++i) {
    const int32_t k = hit[i];
    const double sk = es[k];
    // a guess from the 0.05 spacing, corrected by comparison
    int64_t level = static_cast<int64_t>(std::clamp(sk * static_cast<double>(A + 1), 0.0, static_cast<double>(A)));
    while (level < A && sk >= alpha_min[level]) ++level;
    while (level > 0 && sk < alpha_min[level - 1]) --level;
    ++tp_hist[level];
    loc_hist[level] += sk;
    int32_t& sl = slot[ep[k]];
    if (sl < 0) {
      sl = static_cast<int32_t>(slot_pair.size());
      slot_pair.push_back(ep[k]);
      pair_hist.resize(pair_hist.size() + A + 1, 0);
    }
    ++pair_hist[static_cast<size_t>(sl) * (A + 1) + level];
  }
  // TP and summed similarity per alpha: a pair at level l counts for alphas 0..l-1.
  double* H = out.hota.data();
  double *tp = H, *loc = H + A, *ass_a = H + 2 * A, *ass_re = H + 3 * A, *ass_pr = H + 4 * A;
  int64_t run = 0;
  double run_loc = 0;
  for (int64_t a = A - 1; a >= 0; --a) {
    run += tp_hist[a + 1], run_loc += loc_hist[a + 1];
    tp[a] = static_cast<double>(run), loc[a] = run_loc;
  }
  std::vector<double> m(A);
  for (size_t sl = 0; sl < slot_pair.size(); ++sl) {
    const int32_t* h = pair_hist.data() + sl * (A + 1);
    int64_t acc = 0;
    for (int64_t a = A - 1; a >= 0; --a) acc += h[a + 1], m[a] = static_cast<double>(acc);
    const int64_t key = pairs.key(slot_pair[sl]);
    const double ng = static_cast<double>(gt_count[key / Tn]), nt = static_cast<double>(tr_count[key % Tn]);
    for (int64_t a = 0; a < A; ++a) {
      ass_a[a] += m[a] * (m[a] / std::max(1.0, ng + nt - m[a]));
      ass_re[a] += m[a] * (m[a] / std::max(1.0, ng));
      ass_pr[a] += m[a] * (m[a] / std::max(1.0, nt));
    }
  }
}

// The op: sim [E] float64 (every frame's matrix raveled, frames concatenated); gt_ids [Dg],
// tracker_ids [Dt] int64; gt_ptr, tr_ptr [F + 1] int64 frame offsets. Returns (hota float64 [5, A],
// counts int64 [6]: CLR_TP, IDSW, MT, PT, Frag, IDTP, sums float64 [1]: MOTP_sum).
std::tuple<at::Tensor, at::Tensor, at::Tensor> tracking_counts_cpu(
    const at::Tensor& sim_t, const at::Tensor& gt_ids_t, const at::Tensor& tr_ids_t, const at::Tensor& gt_ptr_t,
    const at::Tensor& tr_ptr_t, int64_t G, int64_t T, const at::Tensor& alpha_min_t, double clear_min,
    double id_min, int64_t metrics, int64_t dense_limit) {
  const char* op = kOp;
  auto check_1d = [&](const at::Tensor& t, const char* name, at::ScalarType dtype) {
    TORCH_CHECK(t.dim() == 1 && t.scalar_type() == dtype && t.device().is_cpu(), op, ": ", name,
                " must be a 1-D ", dtype, " CPU tensor, got ", t.scalar_type(), " ", t.sizes(), " on ",
                t.device());
  };
  check_1d(sim_t, "sim", at::kDouble);
  check_1d(gt_ids_t, "gt_ids", at::kLong);
  check_1d(tr_ids_t, "tracker_ids", at::kLong);
  check_1d(gt_ptr_t, "gt_ptr", at::kLong);
  check_1d(tr_ptr_t, "tr_ptr", at::kLong);
  check_1d(alpha_min_t, "alpha_min", at::kDouble);
  TORCH_CHECK(gt_ptr_t.size(0) >= 1 && tr_ptr_t.size(0) == gt_ptr_t.size(0), op,
              ": gt_ptr and tr_ptr must both be [F + 1], got ", gt_ptr_t.sizes(), " and ", tr_ptr_t.sizes());
  const at::Tensor sim_c = sim_t.contiguous(), gid_c = gt_ids_t.contiguous(), tid_c = tr_ids_t.contiguous();
  const at::Tensor gptr_c = gt_ptr_t.contiguous(), tptr_c = tr_ptr_t.contiguous(), al_c = alpha_min_t.contiguous();
  const int64_t* gptr = gptr_c.const_data_ptr<int64_t>();
  const int64_t* tptr = tptr_c.const_data_ptr<int64_t>();
  Frames fr;
  fr.F = gptr_c.size(0) - 1;
  TORCH_CHECK(gptr[0] == 0 && tptr[0] == 0 && gptr[fr.F] == gid_c.size(0) && tptr[fr.F] == tid_c.size(0), op,
              ": gt_ptr / tr_ptr must run from 0 to the number of detections");
  fr.gptr.assign(gptr, gptr + fr.F + 1), fr.tptr.assign(tptr, tptr + fr.F + 1);
  fr.sim.resize(fr.F), fr.gid.resize(fr.F), fr.tid.resize(fr.F);
  int64_t off = 0;
  for (int64_t f = 0; f < fr.F; ++f) {
    const int64_t ng = gptr[f + 1] - gptr[f], nt = tptr[f + 1] - tptr[f];
    TORCH_CHECK(ng >= 0 && nt >= 0, op, ": frame ", f, " has a negative detection count");
    fr.sim[f] = sim_c.const_data_ptr<double>() + std::min(off, sim_c.size(0));
    fr.gid[f] = gid_c.const_data_ptr<int64_t>() + gptr[f], fr.tid[f] = tid_c.const_data_ptr<int64_t>() + tptr[f];
    off += ng * nt;
  }
  TORCH_CHECK(sim_c.size(0) == off, op, ": sim holds ", sim_c.size(0), " values, the frames need ", off);
  const int64_t A = al_c.size(0);
  Counts c;
  tracking_counts(fr, G, T, al_c.const_data_ptr<double>(), A, clear_min, id_min, metrics, dense_limit, c);
  at::Tensor hota = at::empty({5, A}, sim_t.options());
  std::copy(c.hota.begin(), c.hota.end(), hota.data_ptr<double>());
  at::Tensor counts = at::empty({6}, gid_c.options());
  int64_t* cp = counts.data_ptr<int64_t>();
  std::copy(c.clear, c.clear + 5, cp);
  cp[5] = c.idtp;
  at::Tensor sums = at::full({1}, c.motp_sum, sim_t.options());
  return {hota, counts, sums};
}

// TrackEval's per-frame lists read in place: through numpy's C API where the build had numpy's
// headers (a few field reads per array), else through the buffer protocol (numpy's exporter costs
// about 150 ns an array, 0.35 ms for a 750-frame sequence). Holds a reference (or a buffer view) to
// every array until the counts are done, so the lists may change meanwhile.
#ifdef ROMP_FAST_NUMPY
bool numpy_api = false;  // set when the module loads and numpy's C API imports
#endif

struct ArrayView {
  const void* data;
  int64_t rows, cols;  // cols = 1 for 1-D arrays
};

class FrameViews {
 public:
  explicit FrameViews(size_t n) { views_.reserve(n), refs_.reserve(n); }
  ~FrameViews() {
    for (Py_buffer& b : views_) PyBuffer_Release(&b);
    for (PyObject* o : refs_) Py_DECREF(o);
  }
  FrameViews(const FrameViews&) = delete;
  FrameViews& operator=(const FrameViews&) = delete;
  // The array's data if it is a C-contiguous, aligned, native-order float64 (int64) array with
  // `ndim` dimensions; false otherwise.
  bool get(PyObject* obj, int ndim, bool floating, ArrayView& out) {
#ifdef ROMP_FAST_NUMPY
    if (numpy_api && PyArray_Check(obj)) {
      PyArrayObject* a = reinterpret_cast<PyArrayObject*>(obj);
      const bool kind_ok = floating ? PyArray_TYPE(a) == NPY_FLOAT64
                                    : PyArray_ISINTEGER(a) && PyArray_ISSIGNED(a) && PyArray_ITEMSIZE(a) == 8;
      if (PyArray_NDIM(a) != ndim || !kind_ok || !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) ||
          !PyArray_ISNOTSWAPPED(a))
        return false;
      Py_INCREF(obj);
      refs_.push_back(obj);
      out = {PyArray_DATA(a), PyArray_DIM(a, 0), ndim == 2 ? PyArray_DIM(a, 1) : 1};
      return true;
    }
#endif
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_ND | PyBUF_FORMAT) != 0) {
      PyErr_Clear();
      return false;
    }
    views_.push_back(b);  // reserved: no reallocation
    const Py_buffer& v = views_.back();
    const char* fmt = v.format ? v.format : "B";
    if (*fmt == '@' || *fmt == '=' || *fmt == '<') ++fmt;
    const bool kind_ok = floating ? (fmt[0] == 'd') : (fmt[0] == 'l' || fmt[0] == 'q');
    if (v.ndim != ndim || v.itemsize != 8 || !kind_ok || fmt[1] != '\0' ||
        reinterpret_cast<uintptr_t>(v.buf) % alignof(double) != 0)
      return false;
    out = {v.buf, v.shape[0], ndim == 2 ? v.shape[1] : 1};
    return true;
  }

 private:
  std::vector<Py_buffer> views_;
  std::vector<PyObject*> refs_;
};

}  // namespace

// romp_fast._C._tracking_counts_lists(gt_ids, tracker_ids, similarity_scores, G, T, alpha_min, clear_min,
// id_min, metrics, dense_limit): the counts from TrackEval's per-frame lists of numpy arrays (int64
// ids, float64 [n_gt, n_tracker] similarities), as (hota [5 * A] list, (CLR_TP, IDSW, MT, PT, Frag,
// IDTP), MOTP_sum, gt detections, tracker detections); None when an array is not of that form (the
// caller falls back to the flat op); ValueError for invalid values. A pybind11 function rather than
// a torch op: an op would need one tensor per frame.
void register_tracking(pybind11::module_& m) {
  namespace py = pybind11;
#ifdef ROMP_FAST_NUMPY
  numpy_api = _import_array() >= 0;  // without numpy the buffer protocol still works
  if (!numpy_api) PyErr_Clear();
#endif
  m.def(
      "_tracking_counts_lists",
      [](py::list gt_ids, py::list tracker_ids, py::list sims, int64_t G, int64_t T, std::vector<double> alpha_min,
         double clear_min, double id_min, int64_t metrics, int64_t dense_limit) -> py::object {
        // The lists' own sizes (a subclass's __len__ is not trusted: items are read unchecked).
        const int64_t F = PyList_GET_SIZE(gt_ids.ptr());
        if (PyList_GET_SIZE(tracker_ids.ptr()) != F || PyList_GET_SIZE(sims.ptr()) != F) return py::none();
        Frames fr;
        fr.F = F;
        fr.sim.resize(F), fr.gid.resize(F), fr.tid.resize(F), fr.gptr.resize(F + 1), fr.tptr.resize(F + 1);
        FrameViews views(3 * F);
        std::vector<ArrayView> gv(F), tv(F);
        for (int64_t f = 0; f < F; ++f) {
          ArrayView s;
          if (!views.get(PyList_GET_ITEM(gt_ids.ptr(), f), 1, false, gv[f]) ||
              !views.get(PyList_GET_ITEM(tracker_ids.ptr(), f), 1, false, tv[f]) ||
              !views.get(PyList_GET_ITEM(sims.ptr(), f), 2, true, s) || s.rows != gv[f].rows || s.cols != tv[f].rows)
            return py::none();
          fr.sim[f] = static_cast<const double*>(s.data);
          fr.gptr[f + 1] = fr.gptr[f] + gv[f].rows, fr.tptr[f + 1] = fr.tptr[f] + tv[f].rows;
        }
        // Ids are read many times (and index arrays) after the GIL is released: copies, so another
        // thread writing to the arrays meanwhile cannot turn a checked id into an out-of-range one.
        // Similarities are read once.
        std::vector<int64_t> gid(fr.gptr[F]), tid(fr.tptr[F]);
        for (int64_t f = 0; f < F; ++f) {
          std::copy_n(static_cast<const int64_t*>(gv[f].data), gv[f].rows, gid.data() + fr.gptr[f]);
          std::copy_n(static_cast<const int64_t*>(tv[f].data), tv[f].rows, tid.data() + fr.tptr[f]);
          fr.gid[f] = gid.data() + fr.gptr[f], fr.tid[f] = tid.data() + fr.tptr[f];
        }
        Counts c;
        std::string error;
        {
          py::gil_scoped_release nogil;
          try {
            tracking_counts(fr, G, T, alpha_min.data(), static_cast<int64_t>(alpha_min.size()), clear_min, id_min,
                            metrics, dense_limit, c);
          } catch (const c10::Error& e) {
            error = e.what_without_backtrace();
          }
        }
        if (!error.empty()) throw py::value_error(error);
        return py::make_tuple(py::cast(c.hota), py::make_tuple(c.clear[0], c.clear[1], c.clear[2], c.clear[3],
                                                               c.clear[4], c.idtp),
                              c.motp_sum, fr.gptr[F], fr.tptr[F]);
      },
      "HOTA / CLEAR / Identity counts from TrackEval's per-frame lists (romp_fast/evaluation/tracking/native.py)");
}

TORCH_LIBRARY_IMPL(romp_fast, CPU, m) { m.impl("_tracking_counts", &tracking_counts_cpu); }

}  // namespace romp_fast
