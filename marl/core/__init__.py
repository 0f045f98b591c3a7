"""The data flow's core: data types and acting.

``rollout`` (the :class:`~marl.core.rollout.Rollout` tensors and the ``Policy`` protocol),
``policy`` (decentralised actors), ``runner`` (B auto-resetting envs, fixed-length
fragments), ``nets`` (torsos and heads) and ``returns`` (pure return maths). Nothing here
knows which algorithm learns from the rollouts it makes.
"""
