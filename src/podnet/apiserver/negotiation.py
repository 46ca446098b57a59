"""What form the client wants an answer in, from its Accept header: a Table
(`application/json;as=Table;g=meta.k8s.io;v=v1`), plain JSON, or something this
server does not speak (protobuf), in which case the next offer is tried."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.apiserver.status import ApiError

JSON = "application/json"


@dataclass(frozen=True)
class Wanted:
    table: str | None = None  # the Table version asked for, or None for the object itself


def wanted(accept: str | None) -> Wanted:
    for offer in (accept or "*/*").split(","):
        media, *parts = (p.strip() for p in offer.split(";"))
        params = dict(p.split("=", 1) for p in parts if "=" in p)
        if media not in (JSON, "application/*", "*/*"):
            continue  # protobuf, yaml: not served; perhaps a later offer is
        if params.get("as") == "Table":
            if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return Wanted(params["v"])
            continue
        if "as" in params:
            continue  # PartialObjectMetadata and the like: not served
        return Wanted()
    raise ApiError(406, f"only the following media types are accepted: {JSON}")
