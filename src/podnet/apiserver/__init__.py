"""The Kubernetes API over HTTPS, backed by podnet's store and api/ semantics."""
