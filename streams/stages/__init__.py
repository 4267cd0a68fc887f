"""The stages' logic, free of Kafka: clean → dedup → tag → alert.

Each stage module holds plain functions and classes that tests, ``streams eval`` and the benchmark
floor call directly; the Faust agents in :mod:`streams.app` are thin adapters over them.
"""
