"""Reading network configs with field-named errors: the CNI flavour of model.fields."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from podnet.cni.errors import INVALID_CONFIG, CniError
from podnet.errors import ManifestError
from podnet.model.fields import Fields


@contextmanager
def config_errors() -> Iterator[None]:
    """A wrong field becomes the spec's code 7, naming the field."""
    try:
        yield
    except ManifestError as err:
        raise CniError(INVALID_CONFIG, "invalid network config", f"{err.field}: {err.problem}") from None


def fields(data: Any, path: str) -> Fields:
    with config_errors():
        return Fields(data, path)


def runtime_or_args(config: dict[str, Any], key: str) -> Any:
    """A per-container value from runtimeConfig, or from args.cni, as the conventions allow."""
    runtime = config.get("runtimeConfig")
    if isinstance(runtime, dict) and key in runtime:
        return runtime[key]
    args = config.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict):
        return args["cni"].get(key)
    return None
