"""Learner families side by side: ``coma`` (the on-policy COMA family and its ablations,
IPPO, MAPPO) and ``vd`` (off-policy value decomposition: VDN, QMIX)."""
