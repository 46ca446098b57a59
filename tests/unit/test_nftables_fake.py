"""The Fake applies transactions as the kernel does: the same refusals, all or nothing."""

from __future__ import annotations

import pytest

from podnet.errors import KernelError
from podnet.kernel.nftables import Chain, Element, Map, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.rules import IP_DADDR, SetRef, goto, jump, match, rule
from podnet.kernel.nftables.script import script

T = Table("ip", hooks.PROXY)


def filled() -> Fake:
    nft = Fake()
    nft.run(Transaction(T).add(T, Set("ips", "ipv4_addr"), Map("vm", "ipv4_addr", "verdict"), Chain("a"), Chain("b"))
            .add(rule("a", match(IP_DADDR, SetRef("ips")), jump("b")))
            .add(Element("ips", ("10.0.0.1",)), Element("vm", ("10.0.0.2",), goto("b"))))
    return nft


def test_a_failed_transaction_changes_nothing() -> None:
    nft = filled()
    before = nft.dump()
    with pytest.raises(KernelError, match="chain missing"):
        nft.run(Transaction(T).add(Element("ips", ("10.0.0.9",))).add(rule("a", jump("missing"))))
    assert nft.dump() == before


@pytest.mark.parametrize("tx, problem", [
    (Transaction(Table("ip", "absent")).add(Chain("x")), "No such file or directory"),
    (Transaction(T).create(Chain("a")), "File exists"),
    (Transaction(T).delete(Chain("a")), "Device or resource busy"),  # it has a rule
    (Transaction(T).delete(Chain("b")), "Device or resource busy"),  # a rule and an element jump to it
    (Transaction(T).delete(Set("ips", "ipv4_addr")), "Device or resource busy"),
    (Transaction(T).add(Set("ips", "ipv6_addr")), "File exists"),  # a different declaration
    (Transaction(T).create(Element("ips", ("10.0.0.1",))), "File exists"),
    (Transaction(T).add(Element("vm", ("10.0.0.2",), goto("a"))), "File exists"),  # same key, other value
    (Transaction(T).delete(Element("ips", ("10.9.9.9",))), "No such file or directory"),
    (Transaction(T).add(Element("ips", ("10.0.0.1", "80"))), "does not fit"),
    (Transaction(T).add(Element("vm", ("10.0.0.3",), goto("nowhere"))), "No such file or directory"),
    (Transaction(T).add(rule("a", match(IP_DADDR, SetRef("nope")))), "set nope"),
])
def test_refusals_as_the_kernel_gives_them(tx: Transaction, problem: str) -> None:
    with pytest.raises(KernelError, match=problem):
        filled().run(tx)


def test_add_is_idempotent_and_destroy_tolerates_absence() -> None:
    nft = filled()
    before = nft.dump()
    nft.run(Transaction(T).add(T, Set("ips", "ipv4_addr"), Chain("a"), Element("ips", ("10.0.0.1",))))
    assert nft.dump() == before
    nft.run(Transaction(T).destroy(Element("ips", ("10.7.7.7",)), Element("ips", ("10.0.0.1",))))
    assert nft.list_elements(T, "ips") == []
    nft.run(Transaction(Table("inet", "never")).destroy(Table("inet", "never")))
    assert Table("inet", "never") not in nft.tables


def test_replace_starts_the_table_afresh() -> None:
    nft = filled()
    nft.run(Transaction(T).replace().add(Chain("c")))
    assert nft.dump() == "add table ip podnet-proxy\nadd chain ip podnet-proxy c\n"


def test_flush_empties_chains_and_sets() -> None:
    nft = filled()
    nft.run(Transaction(T).flush(Chain("a"), Set("ips", "ipv4_addr")))
    assert nft.rules(T, "a") == [] and nft.list_elements(T, "ips") == []


def test_dump_is_sorted_and_is_a_script() -> None:
    nft = Fake()
    nft.run(Transaction(T).add(T, base_chain(T, "nat_output"), Chain("z"), Chain("m"), Set("s", "ipv4_addr"))
            .add(rule("z", jump("m")), rule("z", jump("m"), comment="second"))
            .add_elements([Element("s", ("10.0.0.2",)), Element("s", ("10.0.0.1",))]))
    assert nft.dump().splitlines() == [
        "add table ip podnet-proxy",
        "add chain ip podnet-proxy m",
        "add chain ip podnet-proxy nat_output { type nat hook output priority -100; policy accept; }",
        "add chain ip podnet-proxy z",
        "add set ip podnet-proxy s { type ipv4_addr; }",
        "add rule ip podnet-proxy z jump m",
        'add rule ip podnet-proxy z jump m comment "second"',
        "add element ip podnet-proxy s { 10.0.0.1 }",
        "add element ip podnet-proxy s { 10.0.0.2 }",
    ]


def test_script_groups_a_sets_elements_into_one_command() -> None:
    tx = Transaction(T).add_elements([Element("s", ("10.0.0.1",)), Element("s", ("10.0.0.2",))])
    tx.delete_elements([Element("m", ("tcp", "80"), ("10.1.0.1", "8080"))])
    tx.destroy(Element("m", ("udp", "53"), ("10.1.0.2", "53")))
    assert script(tx).splitlines() == [
        "add element ip podnet-proxy s { 10.0.0.1, 10.0.0.2 }",
        "delete element ip podnet-proxy m { tcp . 80 }",
        "add element ip podnet-proxy m { udp . 53 : 10.1.0.2 . 53 }",
        "delete element ip podnet-proxy m { udp . 53 }",
    ]


def test_every_base_chain_comes_from_the_table_of_hooks() -> None:
    with pytest.raises(KeyError, match="not in podnet's table of hooks"):
        base_chain(T, "made_up")
    for table, chains in hooks.HOOKS.items():
        for name, hook in chains.items():
            assert hook.type in ("filter", "nat") and hook.hook in ("prerouting", "input", "forward", "output",
                                                                    "postrouting"), (table, name)
