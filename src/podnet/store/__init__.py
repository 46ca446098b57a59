"""The store: one small key-value interface with revisions and watches.

Shaped after etcd's (get, list, put, delete, compare-and-swap, watch from a
revision), so the embedded SQLite backend and an etcd backend are interchangeable.
"""
