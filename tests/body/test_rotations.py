import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from romp_fast.body.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d,
                                      rot6d_to_axis_angle, rot6d_to_matrix)


def _random_aa(n, gen, dtype):
    axis = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = torch.rand(n, 1, generator=gen, dtype=torch.float64) * math.pi
    return (axis * angle).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_to_matrix_matches_scipy(dtype):
    gen = torch.Generator().manual_seed(1)
    aa = torch.cat([_random_aa(64, gen, dtype), torch.zeros(1, 3, dtype=dtype),
                    torch.tensor([[1e-7, -2e-7, 3e-8], [0.0, 0.0, math.pi], [5e-3, 0, 0]], dtype=dtype)])
    R = axis_angle_to_matrix(aa)
    ref = Rotation.from_rotvec(aa.double().numpy()).as_matrix()
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert R.dtype == dtype and R.shape == (len(aa), 3, 3)
    np.testing.assert_allclose(R.double().numpy(), ref, atol=tol)


def test_batched_leading_dims_and_errors():
    aa = torch.zeros(2, 5, 3)
    assert axis_angle_to_matrix(aa).shape == (2, 5, 3, 3)
    assert matrix_to_axis_angle(torch.eye(3).expand(2, 5, 3, 3)).shape == (2, 5, 3)
    assert rot6d_to_matrix(torch.randn(4, 0, 6)).shape == (4, 0, 3, 3)
    with pytest.raises(ValueError, match=r"axis_angle must be \[\.\.\., 3\], got \[4, 2\]"):
        axis_angle_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="rot6d must be"):
        rot6d_to_matrix(torch.zeros(4, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matrix_axis_angle_round_trip_including_near_zero_and_pi(dtype):
    gen = torch.Generator().manual_seed(2)
    axis = torch.nn.functional.normalize(torch.randn(40, 3, generator=gen, dtype=torch.float64), dim=-1)
    angles = torch.tensor([0.0, 1e-9, 1e-5, 1e-3, 0.5, 2.0, math.pi - 1e-3, math.pi - 1e-6, math.pi] * 4 +
                          [1.0] * 4, dtype=torch.float64)
    aa = (axis * angles[:, None]).to(dtype)
    R = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(R)
    tol = 2e-5 if dtype == torch.float32 else 1e-10
    # the rotation is recovered (at pi the axis sign is free, so compare matrices) ...
    np.testing.assert_allclose(axis_angle_to_matrix(back).double().numpy(), R.double().numpy(), atol=tol)
    # ... and away from pi the axis-angle itself, with angle in [0, pi]
    away = angles < math.pi - 1e-2
    np.testing.assert_allclose(back[away].double().numpy(), aa[away].double().numpy(), atol=tol)
    assert (back.double().norm(dim=-1) <= math.pi + 1e-6).all()
    ref = Rotation.from_matrix(R.double().numpy()).magnitude()
    np.testing.assert_allclose(back.double().norm(dim=-1).numpy(), ref, atol=1e-3 if dtype == torch.float32 else 1e-7)


def test_rot6d_round_trip_and_romp_layout():
    gen = torch.Generator().manual_seed(3)
    R = axis_angle_to_matrix(_random_aa(50, gen, torch.float64))
    x = matrix_to_rot6d(R)
    # ROMP / SPIN layout: x.view(3, 2) holds the first two columns
    torch.testing.assert_close(x.view(-1, 3, 2), R[..., :, :2])
    torch.testing.assert_close(rot6d_to_matrix(x), R)
    torch.testing.assert_close(rot6d_to_axis_angle(x), matrix_to_axis_angle(R))


def test_rot6d_gram_schmidt_on_arbitrary_input():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(100, 6, generator=gen, dtype=torch.float64) * 3
    R = rot6d_to_matrix(x)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))
    # hand-computed Gram-Schmidt: first column is the normalised first 3-vector
    a1 = x.view(-1, 3, 2)[..., 0]
    torch.testing.assert_close(R[..., 0], a1 / a1.norm(dim=-1, keepdim=True))


def test_axis_angle_gradcheck_including_zero():
    gen = torch.Generator().manual_seed(5)
    aa = torch.cat([_random_aa(3, gen, torch.float64), torch.zeros(1, 3, dtype=torch.float64)]).requires_grad_()
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    x = torch.randn(3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot6d_to_matrix, (x,))
    g = torch.autograd.grad(axis_angle_to_matrix(aa).sum(), aa)[0]
    assert torch.isfinite(g).all()
