"""Embedding files larger than memory: near-duplicates, outliers and DBP by cluster partitions.

Modules: config.py (PartitionConfig: every tunable, frozen), centroids.py (k-means centroids and the
assignment of rows), passes.py (passes A and B: ``partition``), neighbours.py (per-cluster kNN, duplicates,
outliers), dbp.py. Names in capitals below are fields of PartitionConfig.

The in-memory checks hold a float32 normalised copy of the features and a neighbour index: 10 GB at
10^7 x 256. Here every pass holds one chunk of rows, or one cluster:

1. Centroids: spherical k-means (clearset.ops.kmeans) on a seeded sample of at most
   max(200,000, 16·k) rows, k = ceil(N / ``cluster_size``) (default 2,000 rows per cluster), 10 iterations.
   Up to ``EXACT_ROWS`` (100,000) rows there is one cluster: the search below is then exact.
2. Pass A, chunk by chunk: each row normalised as the audit does (signed square root, L2) and assigned to
   its most similar centroid exactly (bf16 candidates, fp32 re-rank); assignment and similarity go to
   disk and the cluster sizes and similarity sums are counted. A row whose second-nearest centroid is
   within ``MARGIN`` (0.02) of the nearest is also a *guest* of that second cluster.
3. Pass B, chunk by chunk: a counting sort on disk -- each row is written (float16) to its cluster's next
   free slot with ``pwrite``, with its row number and its similarity to the centroid; guests likewise
   into a second set of files grouped by their second cluster.
4. Per cluster, one contiguous read: each member's exact k nearest among the members and the guests.
   Near-duplicate pairs (cosine >= 0.92 among the 5 nearest) and outlier scores (robust z of the mean
   cosine distance to the 10 nearest) -- the audit's embedding-only rules -- come from them; DBP fills
   its quotas from the same blocks (the similarities to the centroid only).

Memory: one chunk (131,072 rows: 130 MB as float32) or one group of clusters, the centroids, and
O(1) per cluster -- not O(N) floats in RAM: per-row results are written to files (bench/scale/partition.py: peak
1.14 / 1.17 GB at 10^6 / 10^7 rows). Interrupted runs resume: the centroids are saved before pass A, and
passes A, B and the neighbour search checkpoint every ``CHECKPOINT_SECONDS``.
Time: pass A is N·k·D multiply-adds with a flat search (k grows with N: quadratic). Above ``TWO_LEVEL``
(20,000) centroids it is two-level: the centroids grouped by a second k-means into ceil(sqrt(k)) coarse
groups, each group's candidate list learned from the k-means sample (its own centroids plus the two
nearest centroids of every sample row that probes the group), and a row compared with the
coarse centroids and the candidates of its ``PROBE`` (2) nearest groups: about N·(sqrt(k) + 2c)·D for
lists of c centroids (a few times k / sqrt(k)). Pass B and the per-cluster searches are
N·cluster_size·D: linear.
Approximation: a neighbour that k-means put in another cluster, and not as a guest, is not seen.
bench/scale/partition.py measures the neighbour lists' recall@10 against an exact search, and the recall of planted
near-copies and outliers.

Names load on first use (as in ``clearset.train``): the CLI reads ``scale.config`` for a default
without importing numpy, pandas or torch.
"""

from ..lazy import lazy_names

_API = {name: f"clearset.scale.{module}" for module, names in {
    "centroids": ("CentroidIndex", "assign", "centroid_index", "nearest_two"),
    "config": ("DEFAULT", "VERSION", "PartitionConfig"),
    "dbp": ("dbp_select",),
    "neighbours": ("block_knn", "cluster_neighbours", "duplicates_and_outliers", "row_scores"),
    "passes": ("Partition", "partition"),
}.items() for name in names}


__getattr__, __dir__ = lazy_names(__name__, _API)

__all__ = sorted(_API)
