"""Labs: a whole cluster network, or a plain topology, built from namespaces."""
