"""Inputs that can be trusted: files read to their end before use (:mod:`.image_files`), checkpoints loaded without
running code (:mod:`.checkpoints`), and fingerprints of what a resumable job read (:mod:`.fingerprints`), so that a
rerun redoes exactly what changed. This ``__init__`` imports nothing: import from the modules."""
