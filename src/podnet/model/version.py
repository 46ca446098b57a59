"""The Kubernetes release podnet's API and nodes present themselves as: /version
(which picks the kubectl a dispatcher runs) and each Node's kubeletVersion."""

KUBERNETES_VERSION = (1, 32, 0)
GIT_VERSION = "v{}.{}.{}".format(*KUBERNETES_VERSION)
