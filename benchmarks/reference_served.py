"""Served contenders for ``bench_vs_reference.py``: ``maskserve serve`` on the same
checkpoint, the same JPEG bytes over REST, at a given concurrency.

A contender named ``served-<dtype>-c<N>`` posts N copies of the round's image at once
and waits for every answer; its time per call divided by N is its time per image, so it
compares with the reference's batch-1 rate the way a user's throughput would.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
from serving_harness import ServerProcess

from maskserve.models.tomlwrite import dumps
from maskserve.models.yolact.config import YolactConfig
from maskserve.models.yolact.config_io import config_to_dict

NAME = re.compile(r"served-(float32|fp32|bfloat16|bf16)-c(\d+)$")
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "float32": "float32", "bfloat16": "bfloat16"}
MODEL = "r50"


class ServedRunner:
    """``runner(blob)``: ``images`` concurrent requests; returns the detections of one."""

    def __init__(self, url: str, images: int) -> None:
        self.images = images
        self._url = f"{url}/v1/models/{MODEL}/segment"
        self._client = httpx.Client(timeout=300.0, limits=httpx.Limits(max_connections=64))
        self._pool = ThreadPoolExecutor(images)

    def _one(self, blob: bytes) -> int:
        answer = self._client.post(self._url, content=blob, headers={"content-type": "image/jpeg"})
        answer.raise_for_status()
        return len(answer.json()["detections"])

    def __call__(self, blob: bytes) -> int:
        counts = list(self._pool.map(self._one, [blob] * self.images))  # every answer in
        return counts[0]

    def close(self) -> None:
        self._client.close()
        self._pool.shutdown()


def is_served(name: str) -> bool:
    return NAME.match(name) is not None


def served_contenders(
    names: list[str], checkpoint: Path, config: YolactConfig, root: Path, stack: ExitStack
) -> dict[str, ServedRunner]:
    """One ``maskserve serve`` per dtype (on 127.0.0.1), a runner per served contender."""
    folder = root / "served" / MODEL
    folder.mkdir(parents=True)
    (folder / checkpoint.name).write_bytes(checkpoint.read_bytes())
    table = {
        "family": "yolact",
        "weights": checkpoint.name,
        "score_threshold": 0.0,
        "yolact": config_to_dict(config),
    }
    (folder / "model.toml").write_text(dumps(table))
    servers: dict[str, ServerProcess] = {}
    runners: dict[str, ServedRunner] = {}
    for name in names:
        match = NAME.match(name)
        assert match is not None, name
        dtype = DTYPES[match.group(1)]
        if dtype not in servers:
            flags = {
                "model-repository": root / "served",
                "models": MODEL,
                "request-timeout-s": 300,
                "dtype": dtype,
            }
            servers[dtype] = stack.enter_context(ServerProcess(flags, root / f"serve-{dtype}.log"))
        runners[name] = ServedRunner(servers[dtype].url, int(match.group(2)))
        stack.callback(runners[name].close)
    return runners
