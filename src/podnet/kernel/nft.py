"""nftables inside a namespace: whole tables replaced in one atomic transaction."""

from __future__ import annotations

from podnet.kernel import netns


def replace_table(namespace: str, family: str, name: str, body: str) -> None:
    """Make the table exactly `body` (its chains, sets and maps), atomically.

    Declaring the table, deleting it and declaring it again in one `nft -f`
    is a single transaction: a packet sees the old ruleset or the new one.
    """
    script = f"table {family} {name} {{}}\ndelete table {family} {name}\ntable {family} {name} {{\n{body}\n}}\n"
    netns.run(namespace, ["nft", "-f", "-"], input=script)


def delete_table(namespace: str, family: str, name: str) -> None:
    netns.run(namespace, ["nft", "-f", "-"], input=f"table {family} {name} {{}}\ndelete table {family} {name}\n")


def ruleset(namespace: str) -> str:
    return netns.run(namespace, ["nft", "list", "ruleset"]).stdout
