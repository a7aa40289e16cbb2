"""Self-supervised-prototype pruning (Sorscher et al., "Beyond neural scaling laws"): k-means on the
normalised embeddings, every image scored by its cosine distance to the nearest centroid, and the
hardest (farthest; ``easy=True``: nearest) kept. With few images per class kept, easy examples are the
better choice; with many, hard ones -- the paper's finding."""

from __future__ import annotations

from .base import CurateData, Subset, ones, register_strategy, spherical_kmeans, take_top


@register_strategy("prototypes", needs=("features",),
                   description="k-means prototypes: keep the least prototypical (farthest from a centroid)",
                   differs="k = the number of classes by default and one global ranking, on the embedding you "
                           "give (ImageNet-supervised by default, not self-supervised); the DBP card's SSP "
                           "baseline (k = 100, uniform quotas per cluster) is `ssp`")
def prototypes(data: CurateData, n_keep: int, seed: int, clusters: int | None = None, easy: bool = False) -> Subset:
    k = clusters or data.n_classes
    _, assign, sim = spherical_kmeans(data.normalised(), k, seed)
    distance = 1 - sim
    rows = take_top(-distance if easy else distance, n_keep, seed)
    return Subset(rows, ones(len(rows)), {"clusters": int(assign.max() + 1), "kept": "easy" if easy else "hard"})
