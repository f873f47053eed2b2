"""Gender and age → the trigger word of the paper's table (section 2.1).

| age \\ gender | male | female |
|---|---|---|
| 0–20 | a boy, children | a girl, children |
| 20–40 | a handsome man | a beautiful woman |
| > 40 | a mature man | a mature woman |

Each accepted photo's face gets a gender and an age from the attribute model; they are combined
over all photos (gender by quality-weighted vote, age by the quality-weighted median) because a
single photo's estimate is noisy (the bundled age model is off by several years at times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

TRIGGER_TABLE = {
    ("male", "child"): "a boy, children",
    ("female", "child"): "a girl, children",
    ("male", "adult"): "a handsome man",
    ("female", "adult"): "a beautiful woman",
    ("male", "mature"): "a mature man",
    ("female", "mature"): "a mature woman",
}


def age_group(age: float) -> str:
    """``child`` below 20, ``adult`` from 20 to 40, ``mature`` above 40."""
    if age < 20:
        return "child"
    if age <= 40:
        return "adult"
    return "mature"


def trigger_word(gender: str, age: float) -> str:
    g = "female" if str(gender).lower().startswith(("f", "w")) else "male"
    return TRIGGER_TABLE[(g, age_group(age))]


@dataclass
class PersonAttributes:
    """The person's combined attributes and how sure the vote was."""

    gender: str
    age: float
    gender_agreement: float  # share of (weighted) votes for ``gender``

    @property
    def trigger_word(self) -> str:
        return trigger_word(self.gender, self.age)


def combine_attributes(genders: Sequence[str], ages: Sequence[float], weights: Sequence[float] | None = None) -> PersonAttributes:
    """One gender and age for the person from per-photo estimates."""
    if not genders:
        raise ValueError("no attributes to combine")
    w = np.ones(len(genders)) if weights is None else np.maximum(np.asarray(weights, dtype=np.float64), 1e-6)
    female = float(sum(wi for g, wi in zip(genders, w) if str(g).lower().startswith("f")))
    total = float(w.sum())
    gender = "female" if female > total / 2 else "male"
    agreement = female / total if gender == "female" else 1.0 - female / total
    order = np.argsort(ages)
    a = np.asarray(ages, dtype=np.float64)[order]
    cw = np.cumsum(w[order])
    age = float(a[int(np.searchsorted(cw, cw[-1] / 2))])
    return PersonAttributes(gender, age, round(agreement, 4))
