"""Kubernetes-shaped resources (Node, Pod, Service, Deployment) as immutable values.

They keep Kubernetes' names and manifest shape, so a user's manifests load
unchanged, and they round-trip: parse(resource.to_manifest()) == resource.
"""
