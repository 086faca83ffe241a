"""The worker process: its runtime (the engine plus the dispatch loop and background threads), the RQ
worker that runs dispatch jobs, and the pool that supervises worker processes."""
