"""No lab file, however broken, ends in a traceback: random bytes, random YAML
structures and wrong types where a Cluster's fields go are one-line errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.errors import ManifestError
from podnet.lab.spec import load_lab_file

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["10.244.0.0/16", "n1", "Pod", "Service", "host-gw"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=12)
FIELDS = ("apiVersion", "kind", "metadata", "networking", "nodes", "workloads", "store")


def loads(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "lab.yaml"
        path.write_bytes(data)
        try:
            load_lab_file(path)
        except ManifestError as err:
            assert "\n" not in str(err) and str(err).startswith(str(path))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    loads(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6), st.sampled_from(["Cluster", "Topology"]))
def test_wrong_types_in_every_field(document: dict, kind: str) -> None:  # type: ignore[type-arg]
    loads(yaml.safe_dump({"kind": kind, **document}).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(VALUES, max_size=3))
def test_random_documents(documents: list) -> None:  # type: ignore[type-arg]
    loads(yaml.safe_dump_all(documents).encode())
