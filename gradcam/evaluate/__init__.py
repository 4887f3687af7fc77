"""Explaining and evaluating whole datasets (``python -m gradcam evaluate``).

Reads annotations (:mod:`.annotations`), scores Grad-CAM's localisation with the
paper's protocol (:mod:`.metrics`), runs on one machine (:mod:`.local`) or a Ray
cluster (:mod:`.ray_engine`), and writes the results and a report
(:mod:`.report`); :func:`gradcam.evaluate.run.evaluate_dataset` ties them together.
"""
