"""The benchmarks `wes bench` runs: engine throughput against one RQ job per step (``throughput``), the
circuit breaker's cost per call (``breaker``), fixed waves against waveless release (``waveless``) and
the control API's latency with many stored workflows (``api``)."""
