// One side of lbs_vertex_error (rest vertices, joint transforms, optional root) as raw pointers and
// strides, shared by the CPU and CUDA kernels (csrc/cpu/lbs_vertex_error.cpp, csrc/cuda/...cu).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace romp_fast {
namespace lbs {

template <typename T>
struct Mesh {  // rest vertices [B, V, 3], transforms [B, J, 3, 4], root [B, 3] or null
  const T* rest;
  int64_t rb, rv, rc;
  const T* A;
  int64_t ab, aj, ar, ac;
  const T* root;
  int64_t ob, oc;
};

template <typename T>
Mesh<T> mesh(const at::Tensor& rest, const at::Tensor& A, const c10::optional<at::Tensor>& root) {
  Mesh<T> m{rest.const_data_ptr<T>(), rest.stride(0), rest.stride(1), rest.stride(2),
            A.const_data_ptr<T>(),    A.stride(0),    A.stride(1),    A.stride(2),
            A.stride(3),              nullptr,        0,              0};
  if (root.has_value()) m.root = root->const_data_ptr<T>(), m.ob = root->stride(0), m.oc = root->stride(1);
  return m;
}

}  // namespace lbs
}  // namespace romp_fast
