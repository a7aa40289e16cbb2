"""Pure numeric primitives every stage shares; they take arrays and never touch a workspace:
nearest neighbours (knn), spherical k-means (kmeans), the one logistic-regression solver (linear),
quota allocation (quotas)."""
