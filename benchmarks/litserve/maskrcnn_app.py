"""A hand-written LitServe server for a torchvision Mask R-CNN R50-FPN ``.pth``.

Written the way LitServe's documentation shows a batched vision model: ``setup`` loads
the model, ``decode_request`` turns a JSON body with a base64 image into a tensor,
``batch``/``unbatch`` keep a list (torchvision takes images of different sizes),
``predict`` runs the model under ``inference_mode``, ``encode_response`` thresholds the
pasted masks at 0.5 and encodes them with ``pycocotools``.  Used by
``benchmarks/bench_vs_litserve.py`` as the thing maskserve is compared with; not part of
maskserve.

    python benchmarks/litserve/maskrcnn_app.py --weights r50.pth --port 8123
"""

from __future__ import annotations

import argparse
import base64
import io
from typing import Any

import litserve as ls
import numpy as np
import pycocotools.mask as mask_utils
import torch
from PIL import Image
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.transforms.functional import pil_to_tensor


class MaskRcnnAPI(ls.LitAPI):
    def __init__(self, weights: str, detections: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weights = weights
        self.detections = detections

    def setup(self, device: str) -> None:
        model = maskrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=91,
            box_score_thresh=0.0,
            box_detections_per_img=self.detections,
        )
        model.load_state_dict(torch.load(self.weights, map_location="cpu"))
        self.model = model.eval().to(device)
        self.device = device

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # LitServe reads the annotation
        data = base64.b64decode(request["image"])
        image = Image.open(io.BytesIO(data)).convert("RGB")
        return pil_to_tensor(image).float().div(255).to(self.device)

    def batch(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(inputs)

    def predict(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with torch.inference_mode():
            return self.model(images)

    def unbatch(self, output: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        return list(output)

    def encode_response(self, output):  # type: ignore[no-untyped-def]  # (as for decode_request)
        masks = (output["masks"][:, 0] > 0.5).cpu().numpy().astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if len(masks) else []
        return {
            "detections": [
                {
                    "label": int(label),
                    "score": float(score),
                    "box": [float(v) for v in box],
                    "mask": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
                for label, score, box, rle in zip(
                    output["labels"], output["scores"], output["boxes"], rles, strict=True
                )
            ]
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--detections", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0, help="request timeout (s)")
    args = parser.parse_args()
    api = MaskRcnnAPI(
        args.weights,
        args.detections,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=args.timeout)
    server.run(port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
