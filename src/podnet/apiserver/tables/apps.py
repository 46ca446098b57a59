"""Rows of Deployments and ReplicaSets: replicas wanted, ready, up to date and
available, from the status the controllers write; wide, the template's
containers and images and the selector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podnet.apiserver.tables.age import Clock
from podnet.apiserver.tables.cells import (containers_and_images, format_label_selector, selector_text,
                                           template_containers)
from podnet.apiserver.tables.table import AGE, NAME, Cells, Column, Printer, name_and_age

CONTAINERS = Column("Containers", "Names of each container in the template.", priority=1)
IMAGES = Column("Images", "Images referenced by each container in the template.", priority=1)


def _replicas(spec: Mapping[str, Any]) -> int:
    replicas = spec.get("replicas")
    return 1 if replicas is None else replicas  # the API's default


def _deployment(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = selector_text(spec.get("selector"))
    return [name, f"{status.get('readyReplicas') or 0}/{_replicas(spec)}", status.get("updatedReplicas") or 0,
            status.get("availableReplicas") or 0, age, *containers_and_images(template_containers(obj)),
            "<invalid>" if selector is None else selector]


DEPLOYMENT = Printer((
    NAME,
    Column("Ready", "Number of the pod with ready state"),
    Column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired "
                         "template spec."),
    Column("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this "
                        "deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    Column("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the "
                       "ones affected by this deployment.", priority=1),
), _deployment)


def _replica_set(obj: Mapping[str, Any], clock: Clock) -> Cells:
    name, age = name_and_age(obj, clock)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [name, _replicas(spec), status.get("replicas") or 0, status.get("readyReplicas") or 0, age,
            *containers_and_images(template_containers(obj)), format_label_selector(spec.get("selector"))]


REPLICA_SET = Printer((
    NAME,
    Column("Desired", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit "
                      "zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/"
                      "controllers/replicationcontroller/#what-is-a-replicationcontroller", type="integer"),
    Column("Current", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/"
                      "docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
           type="integer"),
    Column("Ready", "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.",
           type="integer"),
    AGE,
    CONTAINERS,
    IMAGES,
    Column("Selector", "Selector is a label query over pods that should match the replica count.", priority=1),
), _replica_set)
