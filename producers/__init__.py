"""The region listing system: one application per region serving every carelisting contract."""
