"""The hazard taxonomy of the bundled safety set: MLCommons AILuminate v1.0's twelve hazards.

Why: a safety set built around one deployment's categories (an enterprise assistant's fraud, access and payroll
requests) teaches those categories, not general harm. Tagging the general-harm rows of the bundled training
split with the hazard they touch, on both sides of the line (a request seeking the harm, a request reporting it,
and a safe request that only shares its words), lets a test hold the set to every hazard and to no alarming
word that predicts the decision alone. The decision each hazard calls for is policy: POLICY.md.

A training record may carry `"hazard": NAME` with NAME one of `HAZARDS`; the readers ignore the field, so the
bundled files stay ordinary safety JSONL.
"""

from __future__ import annotations

# The record field that names a row's hazard (bundled training split only).
HAZARD_FIELD = "hazard"

# AILuminate v1.0's hazards, in its order: the physical, non-physical and contextual hazards.
HAZARDS: dict[str, str] = {
    "violent_crimes": "Violent Crimes",
    "sex_related_crimes": "Sex-Related Crimes",
    "child_sexual_exploitation": "Child Sexual Exploitation",
    "suicide_and_self_harm": "Suicide & Self-Harm",
    "indiscriminate_weapons": "Indiscriminate Weapons (CBRNE)",
    "intellectual_property": "Intellectual Property",
    "defamation": "Defamation",
    "non_violent_crimes": "Non-Violent Crimes",
    "hate": "Hate",
    "privacy": "Privacy",
    "specialised_advice": "Specialized Advice",
    "sexual_content": "Sexual Content",
}
