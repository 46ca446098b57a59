"""YAML as kubectl writes it (Go's yaml, through sigs.k8s.io/yaml): a string
that must be quoted is double-quoted ("1", "2026-12-07T20:49:09Z"), and one of
several lines is a literal block (`|`), as last-applied-configuration reads."""

from __future__ import annotations

from typing import Any

import yaml


class KubectlDumper(yaml.SafeDumper):
    def choose_scalar_style(self) -> str | None:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


KubectlDumper.add_representer(str, _string)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=KubectlDumper, sort_keys=True, allow_unicode=True)
