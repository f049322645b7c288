"""protos/inference/oip_service.proto is wire-compatible with Triton's own protos.

Every message, field and enum value we declare must have the same number, type and
cardinality as in the descriptors tritonclient ships (generated from Triton's
grpc_service.proto and model_config.proto); the service's method paths must match too.
"""

from __future__ import annotations

import pytest

from maskserve.api.gen import oip_service_pb2 as ours

triton_service = pytest.importorskip("tritonclient.grpc.service_pb2")
triton_config = pytest.importorskip("tritonclient.grpc.model_config_pb2")


def _theirs(full_name: str):
    for module in (triton_service, triton_config):
        try:
            return module.DESCRIPTOR.pool.FindMessageTypeByName(full_name)
        except KeyError:
            continue
    raise AssertionError(f"{full_name} is not a Triton message")


def _messages(descriptor):
    yield descriptor
    for nested in descriptor.nested_types:
        if not nested.GetOptions().map_entry:
            yield from _messages(nested)


ALL = [m for top in ours.DESCRIPTOR.message_types_by_name.values() for m in _messages(top)]


@pytest.mark.parametrize("message", ALL, ids=[m.full_name for m in ALL])
def test_every_field_matches_triton(message) -> None:
    theirs = _theirs(message.full_name)
    for field in message.fields:
        other = theirs.fields_by_name.get(field.name)
        assert other is not None, f"{message.full_name}.{field.name} is not Triton's"
        assert (field.number, field.type) == (other.number, other.type), field.full_name
        assert field.is_repeated == other.is_repeated, field.full_name
        if field.message_type is not None:
            assert field.message_type.full_name == other.message_type.full_name


def test_enums_and_methods_match_triton() -> None:
    for name, enum in ours.DESCRIPTOR.enum_types_by_name.items():
        theirs = triton_config.DESCRIPTOR.enum_types_by_name[name]
        assert {v.name: v.number for v in enum.values}.items() <= {
            v.name: v.number for v in theirs.values
        }.items()
    kind = ours.ModelInstanceGroup.DESCRIPTOR.enum_types_by_name["Kind"]
    their_kind = triton_config.ModelInstanceGroup.DESCRIPTOR.enum_types_by_name["Kind"]
    assert [(v.name, v.number) for v in kind.values] == [
        (v.name, v.number) for v in their_kind.values
    ]
    service = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    their_service = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == their_service.full_name
    for method in service.methods:
        other = their_service.methods_by_name[method.name]
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name
