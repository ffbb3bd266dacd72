"""Tests of the client layer against the simulators."""
