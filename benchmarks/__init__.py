"""ghapt's benchmarks: ``python -m benchmarks.run [--quick] [--only NAME]`` (``make bench``).

Every figure is measured in the same run as the reference it is compared with, and printed
as a ratio against it. Nothing here asserts on time: ``tests/e2e/test_benchmarks.py`` only checks
that each benchmark runs on a tiny input and that its table has a sane shape.
"""
