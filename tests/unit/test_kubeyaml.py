"""YAML as kubectl prints it."""

from __future__ import annotations

import yaml

from podnet.cli.kubeyaml import dump


def test_quoted_strings_are_double_quoted_and_lines_are_a_literal_block() -> None:
    document = {"n": "1", "t": "2026-12-07T20:49:09Z", "plain": "web", "empty": "", "json": '{"a":1}\n'}
    text = dump(document)
    assert 'n: "1"\n' in text and 't: "2026-12-07T20:49:09Z"\n' in text and "plain: web\n" in text
    assert 'empty: ""\n' in text and 'json: |\n  {"a":1}\n' in text
    assert yaml.safe_load(text) == document
