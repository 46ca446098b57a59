"""IP address management: host-local compatible leases, and the ranges they come from."""
