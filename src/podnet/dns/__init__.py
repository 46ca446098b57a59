"""Cluster DNS: the Kubernetes DNS schema, answered from the store."""
