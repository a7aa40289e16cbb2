"""The tunables of the partitioned path, in one frozen record (no module globals to patch).

``PartitionConfig()`` holds the defaults every command uses; a caller that wants other values builds its
own (``PartitionConfig(cluster_size=500)`` or ``cfg.replace(...)``) and passes it down. The fields that
change a partition's contents are part of its cache key (``PartitionConfig.key``); the others (chunk
sizes, how often progress is saved) change only memory and time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ParameterError

VERSION = 4  # of the partition files. 4: learned candidate lists above two_level centroids


@dataclass(frozen=True)
class PartitionConfig:
    # above this many bytes of features (N x D x 4) the audit and curation use partitions
    in_memory_bytes: int = 2 << 30
    chunk: int = 131_072  # rows per pass-A / pass-B chunk (130 MB as float32 at D = 256)
    cluster_size: int = 2_000  # rows per cluster on average: k = ceil(N / cluster_size)
    sample: int = 200_000  # k-means sample: at most max(sample, 16 k) rows
    kmeans_iterations: int = 10
    exact_rows: int = 100_000  # up to this many rows: one cluster, the exact search
    margin: float = 0.02  # guest copies: second-nearest centroid within this cosine of the nearest
    guest_share: float = 0.25  # above this share of border rows in the sample, halve the cluster count...
    max_cluster_size: int = 8_000  # ...while clusters stay at most this large on average
    # above this many centroids a row is compared with the candidates of its nearest coarse groups only
    # (centroid_index: lists learned from the k-means sample). bench/scale/assign.py, rows not in the
    # sample, 20,000 centroids: 1.48x faster than the flat search with 2 groups probed, the home centroid
    # within margin of the exact best for 99.995% of rows; 1 group: 8.1x faster but 1% of rows homed away
    # from their neighbours, which end to end flagged 11x more outliers
    # (bench/results/scale_assign.json, scale_two_level*.json)
    two_level: int = 20_000
    probe: int = 2  # coarse groups (k-means of the centroids into ceil(sqrt(k)) groups) searched per row
    group_rows: int = 65_536  # clusters read together per neighbour task
    large_block: int = 20_000  # a cluster above this: clearset.ops.knn's exact search (bf16 + fp32 re-rank)
    block_scores: int = 32_000_000  # fp32 scores held at once inside one cluster (128 MB)
    checkpoint_seconds: float = 30.0  # a pass records its progress at most this often

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("margin", "guest_share", "checkpoint_seconds"):
                ok = v >= 0
            elif f.name in ("exact_rows", "two_level"):
                ok = v >= 0
            else:
                ok = v >= 1
            if not ok:
                raise ParameterError(f"PartitionConfig.{f.name} = {v!r} is out of range")

    def replace(self, **changes) -> "PartitionConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(f"PartitionConfig has no field {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def key(self) -> dict:
        """The fields a partition's contents depend on (with the file format version)."""
        return {"cluster_size": self.cluster_size, "margin": self.margin, "guest_share": self.guest_share,
                "max_cluster_size": self.max_cluster_size, "sample": self.sample,
                "kmeans_iterations": self.kmeans_iterations, "exact_rows": self.exact_rows,
                "two_level": self.two_level, "probe": self.probe, "version": VERSION}


DEFAULT = PartitionConfig()
