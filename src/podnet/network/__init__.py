"""Node-to-node pod networking: what each node's kernel must hold, and applying it."""
