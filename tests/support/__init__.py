"""Test helpers: loopback servers and recorded bodies."""
