"""podnet on real machines: joining a node to a cluster whose store is etcd,
leaving it, and seeing how it stands."""
