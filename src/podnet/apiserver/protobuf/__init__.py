"""Kubernetes' protobuf encoding, read: what typed Go clients (kubectl's `create`
verbs among them) send as request bodies."""
