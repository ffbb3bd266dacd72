"""Tests for Battery Bridge."""
