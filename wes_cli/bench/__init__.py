"""The benchmarks `wes bench` runs: engine throughput against one RQ job per step, or with steps that wait
(``throughput``), steps calling the simulated services over HTTP (``http``), head-of-line blocking behind
a slow service (``hol``), the circuit breaker's cost per call (``breaker``), fixed waves against waveless
release (``waveless``) and the control API's latency with many stored workflows (``api``). ``harness`` is
what the saga benches share; ``profile`` samples the workers' CPU."""
