// Caller-error checks shared by the CPU and CUDA registrations: messages carry the evidence.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <vector>

namespace romp_fast {

// pred, target: [B, N, 3] float32/float64 on one device; weight: [B, N] of pred's dtype.
inline void check_point_sets(const char* op, const at::Tensor& pred, const at::Tensor& target,
                             const c10::optional<at::Tensor>& weight) {
  TORCH_CHECK(pred.dim() == 3 && pred.size(2) == 3, op, ": pred must be [B, N, 3], got ",
              pred.sizes());
  TORCH_CHECK(target.sizes() == pred.sizes(), op, ": target must match pred ", pred.sizes(),
              ", got ", target.sizes());
  TORCH_CHECK(pred.scalar_type() == at::kFloat || pred.scalar_type() == at::kDouble, op,
              ": pred must be float32 or float64, got ", pred.scalar_type());
  TORCH_CHECK(target.scalar_type() == pred.scalar_type(), op, ": target dtype ",
              target.scalar_type(), " differs from pred dtype ", pred.scalar_type());
  TORCH_CHECK(target.device() == pred.device(), op, ": target is on ", target.device(),
              " but pred is on ", pred.device());
  if (weight.has_value()) {
    const at::Tensor& w = *weight;
    TORCH_CHECK(w.dim() == 2 && w.size(0) == pred.size(0) && w.size(1) == pred.size(1), op,
                ": weight must be [B, N] = [", pred.size(0), ", ", pred.size(1), "], got ",
                w.sizes());
    TORCH_CHECK(w.scalar_type() == pred.scalar_type(), op, ": weight dtype ", w.scalar_type(),
                " differs from pred dtype ", pred.scalar_type());
    TORCH_CHECK(w.device() == pred.device(), op, ": weight is on ", w.device(),
                " but pred is on ", pred.device());
  }
}

inline void check_grad(const char* op, const at::Tensor& grad, at::IntArrayRef expected,
                       const at::Tensor& pred) {
  TORCH_CHECK(grad.sizes() == expected, op, ": grad must be ", expected, ", got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == pred.scalar_type() && grad.device() == pred.device(), op,
              ": grad must be ", pred.scalar_type(), " on ", pred.device(), ", got ",
              grad.scalar_type(), " on ", grad.device());
}

// Keypoint/temporal errors: pred, target [B, J, D] (dims = 3) or [S, T, J, D] (dims = 4) with
// D <= 8, float32/float64 on one device; weight/valid [B, J] or [S, T] of pred's dtype.
inline void check_keypoint_error(const char* op, const at::Tensor& pred, const at::Tensor& target,
                                 const at::Tensor& weight, int64_t dims) {
  TORCH_CHECK(pred.dim() == dims && pred.size(-1) >= 1 && pred.size(-1) <= 8, op, ": pred must be ",
              dims == 3 ? "[B, J, D]" : "[S, T, J, D]", " with 1 <= D <= 8, got ", pred.sizes());
  TORCH_CHECK(pred.scalar_type() == at::kFloat || pred.scalar_type() == at::kDouble, op,
              ": pred must be float32 or float64, got ", pred.scalar_type());
  TORCH_CHECK(target.sizes() == pred.sizes() && target.scalar_type() == pred.scalar_type() &&
                  target.device() == pred.device(),
              op, ": target must match pred ", pred.sizes(), " ", pred.scalar_type(), " on ",
              pred.device(), ", got ", target.sizes(), " ", target.scalar_type(), " on ", target.device());
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == pred.size(0) && weight.size(1) == pred.size(1) &&
                  weight.scalar_type() == pred.scalar_type() && weight.device() == pred.device(),
              op, ": weight/valid must be [", pred.size(0), ", ", pred.size(1), "] ", pred.scalar_type(),
              " on ", pred.device(), ", got ", weight.sizes(), " ", weight.scalar_type(), " on ",
              weight.device());
}

inline void check_scale(const char* op, const at::Tensor& scale, const at::Tensor& pred) {
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == pred.size(0) &&
                  scale.scalar_type() == pred.scalar_type() && scale.device() == pred.device(),
              op, ": scale must be [", pred.size(0), "] ", pred.scalar_type(), " on ", pred.device(),
              ", got ", scale.sizes(), " ", scale.scalar_type(), " on ", scale.device());
}

// cost: [B, M, N] float32/float64; counts: int64 [B] on cost's device (values checked where the
// data lives: the CPU kernel on the host, the CUDA kernel clamps without a host sync).
inline void check_assignment(const at::Tensor& cost, const c10::optional<at::Tensor>& row_counts,
                             const c10::optional<at::Tensor>& col_counts) {
  TORCH_CHECK(cost.dim() == 3, "linear_assignment: cost must be [B, M, N], got ", cost.sizes());
  TORCH_CHECK(cost.scalar_type() == at::kFloat || cost.scalar_type() == at::kDouble,
              "linear_assignment: cost must be float32 or float64, got ", cost.scalar_type());
  const int64_t B = cost.size(0);
  const char* names[2] = {"row_counts", "col_counts"};
  const c10::optional<at::Tensor>* counts[2] = {&row_counts, &col_counts};
  for (int k = 0; k < 2; ++k) {
    if (!counts[k]->has_value()) continue;
    const at::Tensor& t = **counts[k];
    TORCH_CHECK(t.dim() == 1 && t.size(0) == B && t.scalar_type() == at::kLong, "linear_assignment: ",
                names[k], " must be int64 [B] = [", B, "], got ", t.scalar_type(), " ", t.sizes());
    TORCH_CHECK(t.device() == cost.device(), "linear_assignment: ", names[k], " is on ", t.device(),
                " but cost is on ", cost.device());
  }
}

// lbs_vertex_error: rest [B, V, 3] and transforms [B, J, 3, 4] per side, weights [V, J], roots [B, 3]
// (optional); float32/float64, one dtype and device for all.
inline void check_lbs_vertex_error(const char* op, const at::Tensor& pred_rest, const at::Tensor& pred_transforms,
                                   const at::Tensor& target_rest, const at::Tensor& target_transforms,
                                   const at::Tensor& weights, const c10::optional<at::Tensor>& pred_root,
                                   const c10::optional<at::Tensor>& target_root) {
  TORCH_CHECK(pred_rest.dim() == 3 && pred_rest.size(2) == 3, op, ": pred_rest must be [B, V, 3], got ",
              pred_rest.sizes());
  TORCH_CHECK(pred_rest.scalar_type() == at::kFloat || pred_rest.scalar_type() == at::kDouble, op,
              ": pred_rest must be float32 or float64, got ", pred_rest.scalar_type());
  const int64_t B = pred_rest.size(0), V = pred_rest.size(1);
  TORCH_CHECK(weights.dim() == 2 && weights.size(0) == V, op, ": weights must be [V, J] with V = ", V, ", got ",
              weights.sizes());
  const int64_t J = weights.size(1);
  auto same = [&](const at::Tensor& t, const char* name, std::vector<int64_t> shape, const char* label) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape), op, ": ", name, " must be ", label, " = ", at::IntArrayRef(shape),
                ", got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == pred_rest.scalar_type() && t.device() == pred_rest.device(), op, ": ", name,
                " must be ", pred_rest.scalar_type(), " on ", pred_rest.device(), ", got ", t.scalar_type(), " on ",
                t.device());
  };
  same(target_rest, "target_rest", {B, V, 3}, "[B, V, 3]");
  same(pred_transforms, "pred_transforms", {B, J, 3, 4}, "[B, J, 3, 4]");
  same(target_transforms, "target_transforms", {B, J, 3, 4}, "[B, J, 3, 4]");
  same(weights, "weights", {V, J}, "[V, J]");
  if (pred_root.has_value()) same(*pred_root, "pred_root", {B, 3}, "[B, 3]");
  if (target_root.has_value()) same(*target_root, "target_root", {B, 3}, "[B, 3]");
}

}  // namespace romp_fast
