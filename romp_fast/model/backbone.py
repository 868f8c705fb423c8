"""ResNet backbones of configurable depth and width (He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016, table 1), written here for romp_fast.

Depths and stage block counts are the paper's (18: 2-2-2-2, 34: 3-4-6-3 basic blocks; 50: 3-4-6-3,
101: 3-4-23-3, 152: 3-8-36-3 bottleneck blocks) plus depth 10 (1-1-1-1 basic blocks), the small CPU
default. ``width`` is the stem's channel count (64 in the paper); stage ``i`` has
``width * 2**i`` channels (times 4 after a bottleneck). Down-sampling uses the stride on the 3x3
convolution of a bottleneck (the "ResNet v1.5" placement, as ROMP's ResNet-50 does), and a 1x1
projection shortcut wherever the shape changes.

Parameter names follow the common ResNet layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layerK.0.downsample.0/1``), so an ImageNet ResNet state dict of the same depth and width loads
with :func:`load_pretrained` (ROMP initialises its ResNet-50 from ImageNet weights).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

# depth -> (block kind, blocks per stage)
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STRIDES = (4, 8, 16, 32)  # output stride of layer1..layer4


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, planes, 3, stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with an identity (or projection) shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, planes, 1)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, stride)
        self.conv3, self.bn3 = _conv_bn(planes, planes * 4, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes * 4, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def _shortcut(cin: int, cout: int, stride: int):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class ResNet(nn.Module):
    """ResNet feature extractor: ``forward(x [B, 3, H, W]) -> [c1, c2, c3, c4]``, the outputs of
    ``layer1..layer4`` at strides 4, 8, 16, 32 with :attr:`channels` channels.

    The final residual BN of every block starts at zero ("zero-gamma", Goyal et al. 2017,
    "Accurate, Large Minibatch SGD", section 5.1) so each block starts as the identity, which
    lets the deep variants train from scratch on the synthetic data; pretrained weights overwrite it.
    """

    def __init__(self, depth: int = 10, width: int = 64):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"backbone depth must be one of {sorted(DEPTHS)}, got {depth}")
        if width < 1:
            raise ValueError(f"backbone width must be >= 1, got {width}")
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.width = depth, width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, chans = width, []
        for i, n in enumerate(counts):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            chans.append(cin)
        self.channels: tuple[int, ...] = tuple(chans)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else (
                getattr(m, "bn2", None) if isinstance(m, BasicBlock) else None)
            if last is not None:
                nn.init.zeros_(last.weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


def load_pretrained(backbone: ResNet, path) -> list[str]:
    """Load a ResNet state dict (``.pth`` / ``.pt``; a ``state_dict`` / ``model`` wrapper and a
    ``module.`` / ``backbone.`` prefix are tolerated) into ``backbone``. Classifier keys (``fc.*``)
    are ignored. Returns the backbone keys the file did not provide; raises ``ValueError`` when a
    shape differs (wrong depth or width)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained backbone file {path} does not exist")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    own = backbone.state_dict()
    clean = {}
    for k, v in sd.items():
        for pre in ("module.", "backbone."):
            if k.startswith(pre):
                k = k[len(pre):]
        if k.startswith("fc."):
            continue
        if k in own and own[k].shape != v.shape:
            raise ValueError(f"pretrained {k} has shape {list(v.shape)}, the ResNet-{backbone.depth} "
                             f"(width {backbone.width}) has {list(own[k].shape)}")
        if k in own:
            clean[k] = v
    backbone.load_state_dict(clean, strict=False)
    return sorted(set(own) - set(clean))
