"""rlhfkit's benchmarks: ``python -m bench`` (or ``make bench``); figures go to BENCHMARKS.md.

One module per benchmark (``core_logger``, ``storage_write``, ``stats``,
``export``, ``instrumentation``, ``collector_ingest``, ``postgres_bulk``,
``dataset``, ``dashboard``), each with ``NAME``, ``TITLE``, ``available()`` and
``run(quick)``. Big fixtures are cached under ``bench/.cache``. Benchmarks
print and record figures; nothing here asserts on time.
"""
