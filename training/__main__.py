import os

# Before TensorFlow is first imported: keep its start-up chatter out of the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.cli import main

raise SystemExit(main())
