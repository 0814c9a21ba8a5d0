"""The data layer: annotated sequences, benchmark readers, training samplers."""
