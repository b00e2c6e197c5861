"""Tests of gpt2course.checks: one module per checks module."""
