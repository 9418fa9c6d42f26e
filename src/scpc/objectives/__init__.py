"""Pre-training objectives, one file per family."""
