"""The workshop: what builds, ships, measures and diagnoses the course, never what it teaches.

The command line's verbs (assets, generate, notebooks, train), the notebook generator
(course), full-size recordings (record), benchmarks (bench), the portability runner and
offline bundles. It imports the library; nothing in the library imports it.
"""
