"""Student models, one module each; every module registers itself in ``STUDENTS``."""
