"""What production never imports: the local broker, the runner, the demo, the benchmark, the
evaluations and the training of the shipped models. `tests/test_layout.py` keeps it that way."""
