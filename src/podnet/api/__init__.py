"""What Kubernetes' API server adds to a plain store: apply with created,
configured or unchanged; compare-and-swap updates retried on conflict; immutable
fields; namespaces that must exist; deletion with grace and cascade."""
