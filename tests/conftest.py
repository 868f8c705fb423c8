import pytest
import torch

import romp_fast.ops

_NO_CUDA = not torch.cuda.is_available() or not romp_fast.ops.native_available("cuda")


@pytest.fixture(autouse=True)
def _seed():
    """Tests draw from their own seeded generators; this only pins anything that uses the global one."""
    torch.manual_seed(0)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(_NO_CUDA, reason="needs a GPU and romp_fast built with CUDA")])])
def device(request):
    return torch.device(request.param)
