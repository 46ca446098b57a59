"""The control plane (`podnet controller`): one per cluster, talking to the store only."""
