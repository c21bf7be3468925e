"""The bundled sample snapshot."""
