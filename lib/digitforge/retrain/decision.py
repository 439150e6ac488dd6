"""The promotion decision of a retrain run.

The champion only ever improves: a challenger replaces it only when, scored on the very same test rows,
it is better by at least `retrain.margin` (accuracy points as a fraction, or loss).
"""
from __future__ import annotations



def decide(champion: dict | None, challenger: dict, margin: float, metric: str = "accuracy") -> dict:
    """Promote or keep. champion / challenger: {"id", "accuracy", "loss"} scored on the same rows.
    accuracy: promote if challenger - champion >= margin (and > 0); loss: if champion - challenger >= margin
    (and > 0). No champion: the challenger becomes champion."""
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"retrain.metric must be accuracy or loss, not {metric!r}")
    if margin < 0:
        raise ValueError(f"retrain.margin must be >= 0, not {margin}")
    if champion is None:
        return {"promote": True, "improvement": None,
                "reason": f"no champion yet: challenger {challenger['id']} (accuracy {challenger['accuracy']:.4f}, "
                          f"loss {challenger['loss']:.4f}) becomes champion"}
    if metric == "accuracy":
        gain = challenger["accuracy"] - champion["accuracy"]
        scores = f"accuracy {challenger['accuracy']:.4f} vs champion's {champion['accuracy']:.4f} ({gain:+.4f})"
    else:
        gain = champion["loss"] - challenger["loss"]
        scores = f"loss {challenger['loss']:.4f} vs champion's {champion['loss']:.4f} ({-gain:+.4f})"
    promote = gain > 0 and gain >= margin - 1e-12
    if promote:
        verdict = f"better by at least the margin {margin:g}: promoted"
    elif gain > 0:
        verdict = f"better, but by less than the margin {margin:g}: champion kept"
    else:
        verdict = "not better: champion kept"
    reason = f"challenger {challenger['id']} {scores} on the same {challenger.get('rows', '?')} test rows: {verdict}"
    return {"promote": promote, "improvement": gain, "reason": reason}
