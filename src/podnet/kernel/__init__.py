"""The only door to the kernel: netns, links, addresses, routes, sysctls and nft.

Every function here takes the name of a podnet namespace (``pn-`` prefix) and refuses
any other, so nothing outside this package can reach the root namespace.
"""
