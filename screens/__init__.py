"""Textual screens and widgets; they read through cache/ only."""
