"""Server-side Tables: each kind's columns as kube-apiserver prints them, so
`kubectl get` (which prints whatever columns a server sends) reads as on
Kubernetes, and podnet's own CLI lays the same Tables out as kubectl does.
Pure functions of the objects, a `now`, and the request's options; no I/O."""

from podnet.apiserver.tables.age import Clock, human_duration
from podnet.apiserver.tables.registry import PRINTERS, default_table, printer_for, to_table
from podnet.apiserver.tables.render import no_resources_found, render_table
from podnet.apiserver.tables.table import Column, Printer, TableOptions, TableRequestError

__all__ = ["PRINTERS", "Clock", "Column", "Printer", "TableOptions", "TableRequestError", "default_table",
           "human_duration", "no_resources_found", "printer_for", "render_table", "to_table"]
