"""The SO8T model: SO(8) rotations, the gate, head B, PET, base loading and the tiny embedded base."""

import logging

# bitsandbytes warns on every import that an optional hub-downloaded CPU 4-bit kernel is missing; its
# built-in CPU kernels are used instead, so the warning only adds noise to every run.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
