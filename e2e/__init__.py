"""End-to-end browser check of the demo (scripts/e2e); not part of the test suite or CI."""
