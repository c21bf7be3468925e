"""depin-explorer: a terminal console for DePIN networks, markets and your own node fleet."""

__version__ = "0.1.0"
