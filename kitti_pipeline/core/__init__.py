"""The ground floor, shared by every other part: what a stage needs whatever it computes.

Typed params and profiles, atomic file writes and the CSV/JSON formats stages exchange, the code
version, the torch device and autocast, the data-parallel world under torchrun, resumable
checkpoints and the stages' command line. Modules here import only each other, never another
part of the package.
"""
