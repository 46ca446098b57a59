"""podnet: a Kubernetes-style container network on the real Linux kernel."""

__version__ = "0.1.0"
