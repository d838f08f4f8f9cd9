"""Building blocks of the demo benchmark: object catalogue, sprites, scenes, sounds."""
