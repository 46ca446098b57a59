"""The service proxy: Services and their endpoints as one nftables table per node."""
