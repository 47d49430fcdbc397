"""Exact single linkage at archive scale: `knn` (the neighbour graph, proven complete up to t), `slink`
(MST, cuts, stable cluster ids), `tune` (the exact ARI curve), `pipeline` (the link stage and its folder)."""
