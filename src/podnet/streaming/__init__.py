"""The kubelet's streaming server: exec, attach, port-forward and container logs,
spoken to the API server over TLS with SPDY/3.1 and WebSocket, as kubectl and the
official clients expect of a kubelet."""
