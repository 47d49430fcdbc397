"""Training loops (CLIP pretraining, CLIPPINGS SupCon) under Ray Train, and SupCon's batch plans.

`batches.py` is pure numpy + FAISS; `pretrain.py` and `supcon.py` share `common.py`'s epoch loop,
checkpoints and Ray Train scaffolding.
"""
