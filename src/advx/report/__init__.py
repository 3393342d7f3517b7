"""Reports: figures (:mod:`advx.report.figures`) and, built from saved results files,
HTML and JSON reports. Rendering never recomputes an attack."""
