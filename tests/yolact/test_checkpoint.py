"""Loading original-format checkpoints and safetensors, and the errors for bad ones."""

from pathlib import Path

import pytest
import torch

from maskserve.models.yolact import checkpoint
from maskserve.models.yolact.config import CONFIGS
from maskserve.models.yolact.network import Yolact


@pytest.fixture(scope="module")
def resnet50() -> Yolact:
    torch.manual_seed(0)
    model = Yolact(CONFIGS["yolact_resnet50"]).eval()
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if buffer_name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif buffer_name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model


def assert_same_weights(a: Yolact, b: Yolact) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_original_format_round_trip_is_exact(resnet50: Yolact, tmp_path: Path) -> None:
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    checkpoint.save_original_format(resnet50, path)
    loaded = checkpoint.load_yolact(path)
    assert loaded.config.name == "yolact_resnet50"
    assert_same_weights(resnet50, loaded)


def test_safetensors_round_trip_is_exact(resnet50: Yolact, tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    checkpoint.save_safetensors(resnet50, path)
    assert_same_weights(resnet50, checkpoint.load_yolact(path, "yolact_resnet50"))


def test_renamed_and_misshaped_keys_give_a_clear_error(resnet50: Yolact, tmp_path: Path) -> None:
    state = resnet50.state_dict()
    state["fpn.lat_layers.7.weight"] = state.pop("fpn.lat_layers.0.weight")
    state["proto_net.10.bias"] = torch.zeros(16)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load_yolact(path, "yolact_resnet50")
    message = str(error.value)
    assert "'yolact_resnet50'" in message
    assert "missing (first: fpn.lat_layers.0.weight)" in message
    assert "unexpected (first: fpn.lat_layers.7.weight)" in message
    assert "proto_net.10.bias: checkpoint (16,) vs config (32,)" in message


def test_inference_failure_names_the_closest_config(resnet50: Yolact, tmp_path: Path) -> None:
    state = resnet50.state_dict()
    state["proto_net.10.bias"] = torch.zeros(16)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(checkpoint.CheckpointError, match="Closest: config 'yolact_resnet50'"):
        checkpoint.load_yolact(path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(Exception, match=r"(?i)weights|unpickl|state_dict"):
        checkpoint.load_yolact(path)
