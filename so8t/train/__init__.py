"""Training: So8tTrainer, data collation, callbacks, the embedded base's pretraining and `so8t train`."""

# Imported first, so bitsandbytes is quieted before transformers' Trainer imports it (so8t/model/__init__.py).
import so8t.model  # noqa: F401
