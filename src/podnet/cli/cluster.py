"""The cluster a verb works on, and how its refusals read: an object that is not
there is kubectl's line, `Error from server (NotFound): pods "x" not found`, with
exit status 1, whichever verb looked (get, describe, delete, scale, label, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from podnet.api.writes import NotFound
from podnet.lab import client
from podnet.store.base import Store


class NotFoundError(click.ClickException):
    """Printed whole, as kubectl prints the server's answer, not as `error: ...`."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.message, err=True)


@contextmanager
def cluster_store(lab_name: str | None) -> Iterator[Store]:
    """The store of the cluster lab named (or of the only one up), closed after use."""
    with client.cluster_store(lab_name) as store:
        try:
            yield store
        except NotFound as err:
            raise NotFoundError(f"Error from server (NotFound): {err}") from None
