"""Kubernetes' protobuf bodies read as the JSON objects they stand for, and
anything else refused in one line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.apiserver.protobuf.decode import ProtobufError, decode, schema


def varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def meta(name: str, **more: bytes) -> bytes:
    labels = b"".join(field(11, field(1, k) + field(2, v)) for k, v in more.items())
    return field(1, name) + field(2, "") + field(7, 0) + field(8, b"") + labels  # as Go writes: zeros too


def test_a_configmap_reads_as_its_json() -> None:
    raw = field(1, meta("settings", app=b"shop")) + field(2, field(1, "a") + field(2, "b")) + \
        field(3, field(1, "blob") + field(2, b"\x00\x01")) + field(4, 0)  # immutable: a *bool, set false
    assert decode(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": {"app": "shop"}},
        "data": {"a": "b"}, "binaryData": {"blob": "AAE="}, "immutable": False}


def test_a_service_port_and_its_int_or_string_target() -> None:
    def port(number: int, target: bytes) -> bytes:
        return field(1, field(3, number) + field(4, target) + field(5, 0))  # nodePort 0: unset

    spec = port(80, field(1, 0) + field(2, 8080)) + port(81, field(1, 1) + field(3, "http")) + field(4, "ClusterIP")
    decoded = decode(envelope("v1", "Service", field(1, meta("web")) + field(2, spec)))
    assert decoded["spec"] == {"ports": [{"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "http"}],
                               "type": "ClusterIP"}


def test_a_pointers_zero_is_kept_and_a_plain_zero_left_out() -> None:
    spec = field(1, 0) + field(5, 0)  # replicas (*int32) 0; minReadySeconds (int32) 0
    assert decode(envelope("apps/v1", "Deployment", field(1, meta("d")) + field(2, spec)))["spec"] == {"replicas": 0}


def test_time_reads_as_rfc3339_and_zero_time_is_left_out() -> None:
    stamped = field(1, "n") + field(8, field(1, 1_700_000_000))
    assert decode(envelope("v1", "Namespace", field(1, stamped)))["metadata"] == \
        {"name": "n", "creationTimestamp": "2023-11-14T22:13:20Z"}


@pytest.mark.parametrize(("body", "says"), [
    (b'{"kind": "ConfigMap"}', "starts with k8s"),
    (envelope("v1", "Widget", b""), "no protobuf encoding is known for Widget in v1"),
    (b"k8s\x00" + field(1, field(1, "v1") + field(2, "ConfigMap")) + b"\x12\x05ab", "malformed"),
    (b"k8s\x00\x0f", "malformed"),
])
def test_what_is_not_a_known_protobuf_object_is_refused_in_one_line(body: bytes, says: str) -> None:
    with pytest.raises(ProtobufError, match=says) as refused:
        decode(body)
    assert "\n" not in str(refused.value)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(schema()["kinds"])), raw=st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused_never_crash(kind: str, raw: bytes) -> None:
    api_version, _, name = kind.rpartition("/")
    try:
        decoded = decode(envelope(api_version, name, raw))
    except ProtobufError:
        return
    assert decoded["kind"] == name
