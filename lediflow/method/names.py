"""The method's vocabulary, free of torch: solver names and the learned prior's zero-step settings.

The path table, the CLI and the tables read these names; importing them must not import torch (a CLI call that
only checks its arguments then answers in a fraction of a second).
"""

FIXED_GRID_SOLVERS = ("euler", "midpoint", "heun3", "rk4")
ADAPTIVE_SOLVERS = ("dopri5",)
ZERO_STEP_SETTINGS = ("prior-x0", "prior-mean")  # the learned prior's own samples: NFE 0, no flow
