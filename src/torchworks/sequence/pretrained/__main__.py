"""``python -m torchworks.sequence.pretrained [NAME ...]``: retrain shipped models and rewrite their files."""

from torchworks.sequence.pretrained import main

main()
