"""Training: the loop (`loop.train`), its state, step, real batches, upkeep, start-up, and the
multi-process, precision and safety machinery it runs on."""
