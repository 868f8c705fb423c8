// The extension module romp_fast._C: every op schema (one TORCH_LIBRARY block) and the build facts.
// The ops are reached through torch.ops.romp_fast; importing _C runs the registrations.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>
#include <torch/library.h>

TORCH_LIBRARY(romp_fast, m) {
  // Procrustes (romp_fast/ops/procrustes.py): pred, target [B, N, 3]; weight [B, N] of pred's dtype.
  m.def("similarity_transform(Tensor pred, Tensor target, Tensor? weight) -> (Tensor, Tensor, Tensor)");
  m.def("procrustes_align(Tensor pred, Tensor target, Tensor? weight) -> Tensor");
  m.def("_procrustes_align_backward(Tensor grad, Tensor pred, Tensor target, Tensor? weight) -> Tensor");
  m.def("pa_mpjpe(Tensor pred, Tensor target, Tensor? weight) -> Tensor");
  m.def("_pa_mpjpe_backward(Tensor grad, Tensor pred, Tensor target, Tensor? weight) -> Tensor");
  // Keypoint and temporal errors (romp_fast/ops/keypoint_losses.py).
  m.def("masked_joint_error(Tensor pred, Tensor target, Tensor weight) -> Tensor");
  m.def("_masked_joint_error_backward(Tensor grad, Tensor pred, Tensor target, Tensor weight) -> Tensor");
  m.def("temporal_difference_error(Tensor pred, Tensor target, Tensor valid, int order) -> Tensor");
  m.def("_temporal_difference_error_backward(Tensor grad, Tensor pred, Tensor target, Tensor valid, "
        "int order) -> Tensor");
  m.def("pairwise_displacement_error(Tensor pred, Tensor target, Tensor valid, Tensor scale) -> Tensor");
  m.def("_pairwise_displacement_error_backward(Tensor grad, Tensor pred, Tensor target, Tensor valid, "
        "Tensor scale) -> Tensor");
  // Skinned-mesh vertex error (romp_fast/ops/lbs_vertex_error.py): rest [B, V, 3], transforms
  // [B, J, 3, 4], weights [V, J], roots [B, 3].
  m.def("lbs_vertex_error(Tensor pred_rest, Tensor pred_transforms, Tensor target_rest, "
        "Tensor target_transforms, Tensor weights, Tensor? pred_root, Tensor? target_root) -> Tensor");
  // Linear assignment (romp_fast/ops/linear_assignment.py): cost [B, M, N]; counts int64 [B].
  m.def("linear_assignment(Tensor cost, Tensor? row_counts, Tensor? col_counts, float? max_cost, "
        "bool maximize) -> Tensor");
  // Tracking counts for HOTA / CLEAR / Identity (CPU only; romp_fast/evaluation/tracking/native.py).
  m.def("_tracking_counts(Tensor sim, Tensor gt_ids, Tensor tracker_ids, Tensor gt_ptr, Tensor tr_ptr, "
        "int num_gt_ids, int num_tracker_ids, Tensor alpha_min, float clear_min, float id_min, int metrics, "
        "int dense_limit) -> (Tensor, Tensor, Tensor)");
}

namespace romp_fast {
void register_tracking(pybind11::module_& m);  // csrc/cpu/tracking_counts.cpp
}

namespace {

const char* simd_level() {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
  // csrc/cpu/procrustes.cpp carries target_clones: an x86-64-v3 copy is picked at load time; the
  // keypoint-loss, assignment and tracking kernels pick AVX-512 code paths at run time.
  if (__builtin_cpu_supports("avx512f"))
    return "x86-64-v3 clones (AVX2+FMA) + AVX-512 paths (masked_joint_error, linear_assignment, tracking scan)";
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "x86-64-v3 clones (AVX2+FMA)"
                                                                          : "baseline x86-64";
#elif defined(__AVX512F__)
  return "AVX512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "scalar";
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "romp_fast native kernels (ops registered under torch.ops.romp_fast)";
#ifdef ROMP_FAST_CUDA_VERSION
  m.attr("cuda_version") = ROMP_FAST_CUDA_VERSION;
#else
  m.attr("cuda_version") = pybind11::none();
#endif
  m.attr("simd") = simd_level();
#ifdef NDEBUG
  m.attr("debug") = false;
#else
  m.attr("debug") = true;
#endif
  romp_fast::register_tracking(m);
  m.def("num_threads", [] { return at::get_num_threads(); },
        "threads at::parallel_for uses in the CPU kernels (torch.set_num_threads)");
}
