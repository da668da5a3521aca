"""The rollout loop, written once for both targets: observe → decide (the pure engine) → apply → save.

``state``: where a rollout's state lives (the RolloutState port: a store row locally, the
ModelRollout resource in the cluster); ``apply``: the only interpreter of the engine's actions;
``observe``: the one observer; ``loop``: one reconcile over those three.
"""
