"""DHCP IPAM, as the reference dhcp plugin does it: a daemon acquires each
container interface's lease from the DHCP server on its segment, renews it, and
releases it on DEL; the podnet-dhcp plugin asks the daemon."""
