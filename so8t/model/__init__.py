"""The SO8T model: SO(8) rotations, the gate, head B, PET, base loading and the tiny embedded base."""

import logging

# bitsandbytes warns when it loads on a CPU with AVX512-BF16 that an optional hub-downloaded 4-bit kernel is
# missing; its built-in CPU kernels are used instead, so the warning only adds noise to every run. Set here,
# before bitsandbytes loads: peft and transformers' Trainer import it when it is installed, so so8t.train and
# so8t.consolidate import this package before either of them.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
