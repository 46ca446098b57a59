"""Up, down and finding things in running labs; down is safe to repeat or to run
after a crash, because it finds namespaces and processes by name, not by memory."""

from __future__ import annotations

from pathlib import Path

from podnet.errors import LabError, PodnetError
from podnet.kernel import netns
from podnet.lab import names, state, webview
from podnet.lab.progress import Progress, Silent
from podnet.lab.state import LabRecord


def lab_namespaces(lab: str) -> list[str]:
    first = names.lab_namespace(lab)
    return [ns for ns in netns.list_namespaces(first) if ns == first or ns.startswith(names.lab_prefix(lab))]


def up(path: str | Path, progress: Progress = Silent()) -> LabRecord:
    """Validate the whole file, then build; on any failure remove what was built.
    The builders are imported here, so `exec` and `down` do without them (and pyroute2)."""
    from podnet.lab.cluster import build_cluster
    from podnet.lab.spec import ClusterSpec, LabSpec, load_lab_file
    from podnet.lab.topology import build_topology

    spec: LabSpec = load_lab_file(path)
    if not names.in_scope(spec.name):
        raise LabError(f"lab {spec.name} is outside this scope ({names.SCOPE_VARIABLE}): "
                       f"its name must start with {names.scope_prefix()!r}")
    if state.load(spec.name) or lab_namespaces(spec.name):
        raise LabError(f"lab {spec.name} is already up; run `podnet lab down {spec.name}` first")
    record = LabRecord(spec.name, spec.kind, str(Path(path).resolve()))
    record.save()
    try:
        if isinstance(spec, ClusterSpec):
            build_cluster(spec, record, progress)
        else:
            build_topology(spec, record, progress)
    except BaseException as err:
        down(spec.name)
        if isinstance(err, PodnetError):
            raise LabError(f"lab {spec.name} could not be built, and what was built is removed: {err}") from err
        raise
    return record


def _remove_namespaces(namespaces: list[str]) -> None:
    """Processes first (they hold the namespaces), then the agents' sockets, which
    are named after the namespaces, then the namespaces."""
    netns.kill_processes_in(namespaces)
    for namespace in namespaces:
        forget_agent_socket(namespace)
        netns.delete(namespace)


def forget_agent_socket(namespace: str) -> None:
    """The agent's socket and its journal of pending deletions (the same name)."""
    from podnet.cni.entry import socket_path_for

    try:
        socket = Path(socket_path_for(str(netns.path(namespace))))
    except FileNotFoundError:
        return
    socket.unlink(missing_ok=True)
    socket.with_suffix(".pending").unlink(missing_ok=True)


def down(lab: str) -> list[str]:
    """Stop the lab's processes, delete its namespaces and its record; returns the
    namespaces deleted."""
    webview.stop(state.labs_dir() / lab)
    netns.kill_processes_in(lab_namespaces(lab))  # agents stop first: until then they may make pods
    namespaces = lab_namespaces(lab)
    _remove_namespaces(namespaces)
    state.forget(lab)
    return namespaces


def down_all(prefix: str | None = None) -> list[str]:
    """Every podnet namespace and lab record whose name starts with prefix, crashed
    or not; by default all of this process's scope (outside a scope, all of them)."""
    prefix = prefix or names.scope_namespaces()
    netns.kill_processes_in(netns.list_namespaces(prefix))  # agents stop first: until then they may make pods
    namespaces = netns.list_namespaces(prefix)
    _remove_namespaces(namespaces)
    for name in state.recorded_names():
        if names.lab_namespace(name).startswith(prefix):
            webview.stop(state.labs_dir() / name)
            state.forget(name)
    return namespaces


MEMBER_KINDS = ("node", "host", "switch")  # the kinds of a lab record's members (KIND/NAME)


def find_member(target: str, lab: str | None = None, namespace: str = "default") -> tuple[LabRecord, str]:
    """The lab and network namespace of a pod, node, host or switch, by name."""
    records = [r for r in state.running() if lab is None or r.name == lab]
    if lab and not records:
        raise LabError(f"no lab named {lab} is up")
    prefixed = "/" in target  # only KIND/NAME has a prefix: a member may be named `host`, `node` or `switch`
    keys = [target] if prefixed else [f"{kind}/{target}" for kind in MEMBER_KINDS]
    matches = [(record, record.members[key]) for record in records for key in keys if key in record.members]
    if not prefixed:
        matches += [(record, pod) for record in records if record.kind == "Cluster"
                    and netns.exists(pod := names.pod_namespace(record.name, namespace, target))]
    if not matches:
        where = f"lab {lab}" if lab else "any running lab"
        if prefixed:
            raise LabError(f"no {target} in {where} (a member is node/NAME, host/NAME or switch/NAME)")
        raise LabError(f"no pod {target} in namespace {namespace}, nor node, host or switch {target}, in {where}")
    if len({record.name for record, _ in matches}) > 1:
        labs = ", ".join(sorted({record.name for record, _ in matches}))
        raise LabError(f"{target!r} is in several labs ({labs}); choose one with --lab")
    return matches[0]
