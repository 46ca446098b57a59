"""A Service's IP families, defaulted and checked as kube-apiserver does before
it allocates ClusterIPs (its registry's initIPFamilyFields and the validation
of clusterIPs, ipFamilies and ipFamilyPolicy), so a manifest written for a
dual-stack Kubernetes cluster means the same here.

The rules, in short: ipFamilyPolicy defaults to SingleStack (RequireDualStack
for a headless Service without a selector), or to what the Service had before;
ipFamilies follow the ClusterIPs given, then the cluster's primary family, and
gain the other family when the policy asks for two and the cluster has two.
RequireDualStack on a single-stack cluster is refused. On an update, the first
ClusterIP and family never change, a secondary one is added by raising the
policy and released only by setting it to SingleStack.
"""

from __future__ import annotations

from dataclasses import replace

from podnet.errors import ManifestError
from podnet.model.families import IPV4, IPV6, family_of
from podnet.model.service import HEADLESS, REQUIRE_DUAL_STACK, SINGLE_STACK, Service


def _invalid(field: str, value: object, problem: str) -> ManifestError:
    shown = f'"{value}"' if isinstance(value, str) else "[" + ", ".join(f'"{v}"' for v in value) + "]"  # type: ignore[attr-defined]
    return ManifestError(field, f"Invalid value: {shown}: {problem}")


def _other(family: str) -> str:
    return IPV6 if family == IPV4 else IPV4


def default_families(service: Service, cluster_families: tuple[str, ...], old: Service | None = None) -> Service:
    """The Service with ipFamilyPolicy and ipFamilies filled in (and, on an
    update to SingleStack, its secondary ClusterIP and family let go); a
    ManifestError in kube-apiserver's words when they cannot be met."""
    if service.type == "ExternalName":
        return _external_name(service)
    if old is not None:
        _check_immutable(service, old)
    if old is not None and old.ip_family_policy and _same_prefer_dual_stack(service, old):
        return replace(service, ip_families=service.ip_families or old.ip_families)
    policy = service.ip_family_policy or (old.ip_family_policy if old is not None else None)
    selectorless_headless = service.headless and not service.selector
    if policy is None:
        policy = REQUIRE_DUAL_STACK if selectorless_headless else SINGLE_STACK
    ips, families = list(service.cluster_ips), list(service.ip_families)
    if old is not None:
        if policy == SINGLE_STACK:
            if ips == list(old.cluster_ips) and len(ips) > 1:
                ips = ips[:1]
            if families == list(old.ip_families) and len(families) > 1:
                families = families[:1]
        else:
            if 0 < len(ips) < len(old.cluster_ips) and not old.headless:
                raise _invalid("spec.ipFamilyPolicy", policy, "must be 'SingleStack' to release the secondary cluster IP")
            if 0 < len(families) < len(old.ip_families):
                raise _invalid("spec.ipFamilyPolicy", policy, "must be 'SingleStack' to release the secondary IP family")
    _check_agreement(service, policy, ips, families)
    for i, ip in enumerate(ips):
        if ip == HEADLESS:
            break
        if i >= len(families):
            if family_of(ip) not in cluster_families:
                raise _invalid(f"spec.clusterIPs[{i}]", ip, f"{family_of(ip)} is not configured on this cluster")
            families.append(family_of(ip))
    if selectorless_headless:
        families = families or [cluster_families[0]]
        if len(families) < 2 and policy != SINGLE_STACK:
            families.append(_other(families[0]))
        return replace(service, cluster_ips=tuple(ips), ip_families=tuple(families), ip_family_policy=policy)
    if policy == REQUIRE_DUAL_STACK and len(cluster_families) < 2:
        raise _invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services")
    for i, family in enumerate(families):
        if family not in cluster_families:
            raise _invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
    families = families or [cluster_families[0]]
    if policy != SINGLE_STACK and len(families) == 1 and len(cluster_families) == 2:
        families.append(_other(families[0]))
    return replace(service, cluster_ips=tuple(ips), ip_families=tuple(families), ip_family_policy=policy)


def _external_name(service: Service) -> Service:
    """An ExternalName Service has no address of its own, so none of these may be set."""
    for field, value in (("clusterIPs", service.cluster_ips), ("ipFamilies", service.ip_families),
                         ("ipFamilyPolicy", service.ip_family_policy)):
        if value and value != (HEADLESS,):
            raise ManifestError(f"spec.{field}", "Forbidden: may not be set for ExternalName services")
    return service


def _check_agreement(service: Service, policy: str, ips: list[str], families: list[str]) -> None:
    """ClusterIPs and ipFamilies name the same families, and a SingleStack
    Service holds one of each."""
    if policy == SINGLE_STACK and len(ips) > 1:
        raise _invalid("spec.ipFamilyPolicy", policy,
                       "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified")
    if policy == SINGLE_STACK and len(families) > 1:
        raise _invalid("spec.ipFamilyPolicy", policy,
                       "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")
    if service.headless:
        return
    for i, (ip, family) in enumerate(zip(ips, families)):
        if family_of(ip) != family:
            raise _invalid(f"spec.clusterIPs[{i}]", ip, f"expected an {family} value as indicated by `ipFamilies[{i}]`")


def _check_immutable(service: Service, old: Service) -> None:
    if service.cluster_ips and old.cluster_ips and service.cluster_ips[0] != old.cluster_ips[0]:
        raise _invalid("spec.clusterIPs[0]", service.cluster_ips[0], "may not change once set")
    if service.ip_families and old.ip_families and service.ip_families[0] != old.ip_families[0]:
        raise _invalid("spec.ipFamilies[0]", service.ip_families[0], "may not change once set")


def _same_prefer_dual_stack(service: Service, old: Service) -> bool:
    """A PreferDualStack Service is neither upgraded nor downgraded when the
    cluster's families change, only when its own fields say so."""
    policy = service.ip_family_policy or old.ip_family_policy
    return old.ip_family_policy == policy == "PreferDualStack" and \
        service.cluster_ips in ((), old.cluster_ips) and service.ip_families in ((), old.ip_families)
