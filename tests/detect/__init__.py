"""Tests of the detection stage."""
