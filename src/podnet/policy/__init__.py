"""NetworkPolicy and ClusterNetworkPolicy: the evaluator (pure) and the enforcer."""
