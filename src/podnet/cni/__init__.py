"""CNI: the plugins (bridge, host-local, loopback, portmap), their spec types,
the thin exec'd entry point, and the agent-side server that does the work.

This package's __init__ stays empty: the exec'd entry imports through it and
must not pay for anything it does not use.
"""
