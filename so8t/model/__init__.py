"""The SO8T model: SO(8) rotations, the gate, head B, PET, base loading and the tiny embedded base."""
