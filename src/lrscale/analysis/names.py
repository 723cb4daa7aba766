"""The names the analysis writes into fit.json and reads back: flags, forms, how an optimum was
placed. Defined once here; imports nothing, so the plan readers (lrscale.plans) and the planner
use them without loading numpy or scipy."""

# An optimum's flags (fit.json per_batch[].flags: flag -> reason). All but GRAD_CLIPPED keep it out
# of the fits across B (EDGE and CLIPPED enter with analysis.include_edge).
INSUFFICIENT, EDGE, CLIPPED, FLAT, NO_NOISE, GRAD_CLIPPED = (
    "insufficient", "edge", "clipped", "flat", "no_noise", "grad_clipped")
FLAGS = (INSUFFICIENT, EDGE, CLIPPED, FLAT, NO_NOISE, GRAD_CLIPPED)
UNBRACKETED = (EDGE, INSUFFICIENT)  # flags that more lrs beyond an edge can resolve

# The forms of lr_opt(B) (fit.json forms.<name>, preferred_form), the power law first.
POWER_LAW, MCCANDLISH, SURGE = "power_law", "mccandlish", "surge"
FORMS = (POWER_LAW, MCCANDLISH, SURGE)
BENDING = (MCCANDLISH, SURGE)
UNDECIDED = "undecided"  # preferred_form when two bending forms fit alike
NO_FORM = "none"  # preferred_form when no form passes the goodness-of-fit test

# How an optimum was placed (fit.json per_batch[].method).
QUADRATIC = "quadratic"
GRID_POINT_EDGE = "best grid point (not bracketed)"
GRID_POINT_FLAT = "best grid point (no local minimum between its neighbours)"
