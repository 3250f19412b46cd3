"""Analyses of datasets and results behind ``lbp analyze``: PLAAN's exercise-type
correlation (:mod:`.exercise_correlation`) and the ANOVA of pain levels
(:mod:`.anova`)."""
