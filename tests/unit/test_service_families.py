"""A Service's IP families, defaulted and refused as kube-apiserver does."""

from __future__ import annotations

import pytest

from podnet.api.service_families import default_families
from podnet.errors import ManifestError
from podnet.model.manifest import parse_resource
from podnet.model.service import Service

DUAL, V4, V6_FIRST = ("IPv4", "IPv6"), ("IPv4",), ("IPv6", "IPv4")


def service(**spec: object) -> Service:
    document = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}
    return parse_resource(document)  # type: ignore[return-value]


DEFAULTS = {  # spec, cluster families -> (policy, families, clusterIPs as given)
    "nothing, single-stack": ({}, V4, ("SingleStack", ("IPv4",))),
    "nothing, dual-stack": ({}, DUAL, ("SingleStack", ("IPv4",))),
    "nothing, IPv6 primary": ({}, V6_FIRST, ("SingleStack", ("IPv6",))),
    "prefer on single-stack": ({"ipFamilyPolicy": "PreferDualStack"}, V4, ("PreferDualStack", ("IPv4",))),
    "prefer on dual-stack": ({"ipFamilyPolicy": "PreferDualStack"}, DUAL, ("PreferDualStack", ("IPv4", "IPv6"))),
    "require, IPv6 first": ({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6"]}, DUAL,
                            ("RequireDualStack", ("IPv6", "IPv4"))),
    "families from clusterIPs": ({"clusterIPs": ["fd00:10:96::7"]}, DUAL, ("SingleStack", ("IPv6",))),
    "headless without selector": ({"clusterIP": "None", "selector": None}, V4, ("RequireDualStack", DUAL)),
}


@pytest.mark.parametrize("case", DEFAULTS, ids=list(DEFAULTS))
def test_defaults(case: str) -> None:
    spec, cluster, (policy, families) = DEFAULTS[case]
    spec = {k: v for k, v in spec.items() if v is not None}
    made = default_families(service(**spec), cluster)
    if case == "headless without selector":
        made = default_families(service(clusterIP="None", selector={}), cluster)
    assert (made.ip_family_policy, made.ip_families) == (policy, families)


REFUSED = {
    "require on single-stack": ({"ipFamilyPolicy": "RequireDualStack"}, V4,
                                'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
                                'configured for dual-stack services'),
    "a family the cluster lacks": ({"ipFamilies": ["IPv6"]}, V4,
                                   'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'),
    "two families, single-stack": ({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}, DUAL,
                                   "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families"),
    "an IP of the other family": ({"clusterIPs": ["fd00:10:96::7"], "ipFamilies": ["IPv4"]}, DUAL,
                                  "spec.clusterIPs[0]: Invalid value: \"fd00:10:96::7\": expected an IPv4 value as "
                                  "indicated by `ipFamilies[0]`"),
    "an IP of a family the cluster lacks": ({"clusterIP": "fd00:10:96::7"}, V4,
                                            "IPv6 is not configured on this cluster"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_in_kube_apiservers_words(case: str) -> None:
    spec, cluster, message = REFUSED[case]
    with pytest.raises(ManifestError) as caught:
        default_families(service(**spec), cluster)
    assert message in str(caught.value)


def test_an_update_adds_a_family_when_the_policy_asks_and_releases_it_only_when_single_stack() -> None:
    old = default_families(service(clusterIP="10.96.0.5"), DUAL)
    upgraded = default_families(service(clusterIP="10.96.0.5", ipFamilyPolicy="PreferDualStack"), DUAL, old)
    assert upgraded.ip_families == DUAL and upgraded.cluster_ips == ("10.96.0.5",)  # the allocator adds the second
    dual = service(clusterIPs=["10.96.0.5", "fd00:10:96::5"], ipFamilyPolicy="PreferDualStack")
    dual = default_families(dual, DUAL, upgraded)
    with pytest.raises(ManifestError, match="must be 'SingleStack' to release the secondary cluster IP"):
        default_families(service(clusterIP="10.96.0.5", ipFamilies=["IPv4", "IPv6"],
                                 ipFamilyPolicy="PreferDualStack"), DUAL, dual)
    down = default_families(service(clusterIPs=["10.96.0.5", "fd00:10:96::5"], ipFamilies=["IPv4", "IPv6"],
                                    ipFamilyPolicy="SingleStack"), DUAL, dual)
    assert (down.cluster_ips, down.ip_families) == (("10.96.0.5",), ("IPv4",))
    with pytest.raises(ManifestError, match=r'spec.ipFamilies\[0\]: Invalid value: "IPv6": may not change once set'):
        default_families(service(ipFamilies=["IPv6"]), DUAL, dual)


def test_external_name_takes_no_families() -> None:
    with pytest.raises(ManifestError, match="may not be set for ExternalName services"):
        default_families(service(type="ExternalName", externalName="example.org", ipFamilies=["IPv4"]), DUAL)
