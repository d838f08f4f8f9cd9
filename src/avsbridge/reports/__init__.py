"""Reports: the paper's tables with quoted and reproduced rows, and figures."""
