"""The per-node agent: watches the store and keeps its node's kernel state right."""
