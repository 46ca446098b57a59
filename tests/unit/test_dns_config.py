"""The Corefile reader: kubeadm's default Corefile, the seed's, and refusals."""

from __future__ import annotations

import pytest

from podnet.dns.cache import Prefetch
from podnet.dns.config import ConfigError, parse_address, parse_corefile

KUBEADM = """
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . 10.0.0.53 10.0.0.54:5353 {
       max_concurrent 1000
       policy sequential
       health_check 2s
       max_fails 3
       expire 5s
    }
    cache 30 {
       prefetch 5 1m 20%
    }
    loop
    reload
    loadbalance
}
"""


def test_kubeadm_default_corefile() -> None:
    config = parse_corefile(KUBEADM)
    assert config.listen == ("0.0.0.0", 53)
    assert (config.domain, config.pods, config.ttl) == ("cluster.local", "insecure", 30)
    assert config.upstreams == (("10.0.0.53", 53), ("10.0.0.54", 5353))
    assert (config.policy, config.health_check, config.max_fails, config.expire) == ("sequential", 2.0, 3, 5.0)
    assert config.cache_max_ttl == 30 and config.prefetch == Prefetch(5, 60.0, 20)
    assert config.loop_check
    assert config.http == {"health": ("0.0.0.0", 8080), "ready": ("0.0.0.0", 8181), "prometheus": ("0.0.0.0", 9153)}


def test_the_seeds_hosts_only_corefile() -> None:
    config = parse_corefile(". {\n    hosts /etc/hosts\n}\n")
    assert config.domain is None and config.hosts_file == "/etc/hosts" and not config.upstreams


def test_forward_to_resolv_conf(tmp_path) -> None:  # type: ignore[no-untyped-def]
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example.org\nnameserver 203.0.113.53\n")
    assert parse_corefile(f".:1053 {{\n forward . {resolv}\n}}").upstreams == (("203.0.113.53", 53),)


@pytest.mark.parametrize("text, problem", [
    (".:53 {\n  rewrite name foo bar\n}", "line 2: rewrite: unknown plugin"),
    (".:53 {\n  forward example.org 1.1.1.1\n}", "forward . UPSTREAM"),
    (".:53 {\n  kubernetes cluster.local {\n    pods sometimes\n  }\n}", "pods must be one of"),
    (".:53 {\n  hosts /etc/hosts\n", "not closed"),
    ("example.org:53 {\n}", "must be for '.'"),
    (".:53 {\n  forward . dns.google\n}", "not an IP address"),
])
def test_refusals_name_the_line_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_corefile(text)


def test_addresses() -> None:
    assert parse_address(":8080", 80) == ("0.0.0.0", 8080)
    assert parse_address("[fd00::1]:5353", 53) == ("fd00::1", 5353)
    assert parse_address("fd00::1", 53) == ("fd00::1", 53)
    assert parse_address("dns://1.1.1.1", 53) == ("1.1.1.1", 53)
