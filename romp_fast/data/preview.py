"""``python -m romp_fast.data.preview OUT.png [--n 8 --seed 0 --image-size 256 --cols 4]``:
a grid of synthetic samples with their ground truth drawn on top: valid 2D joints (dots, white
for the torso joints that define the centre), centres (crosses), boxes (rectangles), one colour per
person. Needs Pillow.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from romp_fast.data import geometry as G
from romp_fast.data.synthetic import SyntheticScenes

_COLOURS = [(255, 60, 60), (60, 220, 60), (60, 120, 255), (255, 200, 0), (255, 0, 255),
            (0, 230, 230), (255, 140, 0), (150, 90, 255)]


def draw_sample(sample: dict):
    """A PIL image of ``sample`` (contract image sample) with its 2D ground truth drawn."""
    from PIL import Image, ImageDraw

    img = sample["image"]
    H, W = img.shape[-2:]
    im = Image.fromarray((img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    torso = set(G.TORSO_54.tolist())
    for p in torch.nonzero(sample["person_valid"]).flatten().tolist():
        col = _COLOURS[p % len(_COLOURS)]
        if sample["boxes_valid"][p]:
            x0, y0, x1, y1 = sample["boxes"][p].tolist()
            (a, b), (c, e) = G.to_pixels(torch.tensor([[x0, y0], [x1, y1]]), W, H).tolist()
            d.rectangle([a, b, c, e], outline=col)
        px = G.to_pixels(sample["kp2d"][p], W, H)
        for j in torch.nonzero(sample["kp2d_valid"][p]).flatten().tolist():
            x, y = px[j].tolist()
            d.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(255, 255, 255) if j in torso else col)
        if sample["centers_valid"][p]:
            x, y = G.to_pixels(sample["centers"][p], W, H).tolist()
            d.line([x - 5, y, x + 5, y], fill=col, width=2)
            d.line([x, y - 5, x, y + 5], fill=col, width=2)
    return im


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=256)
    args = ap.parse_args(argv)
    from PIL import Image

    ds = SyntheticScenes(args.n, image_size=args.image_size, seed=args.seed)
    tiles = [draw_sample(ds[i]) for i in range(args.n)]
    cols = min(args.cols, args.n)
    rows = (args.n + cols - 1) // cols
    S = args.image_size
    grid = Image.new("RGB", (cols * S, rows * S))
    for i, t in enumerate(tiles):
        grid.paste(t, ((i % cols) * S, (i // cols) * S))
    grid.save(args.out)
    print(f"wrote {args.out} ({args.n} samples, seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
