"""Experiments across revisions: paired differences (`diff`) and the grid of variants (`grid`)."""
